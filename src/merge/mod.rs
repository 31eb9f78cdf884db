//! Merging shard answers into the answer one node would give (DESIGN §5). Plain code: the
//! gateway hands it bytes and gets bytes back; hits are copied, never re-serialized.

pub mod facet_search;
pub mod facets;
pub mod plan;
pub mod raw;
pub mod score;
pub mod search;

pub use search::{merge_search, HitPlan, MergeError, SearchPlan, ShardAnswer};
