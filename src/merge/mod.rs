//! Merging shard answers into the answer one node would give (the README's section "Reads:
//! what exact means" states the contract). Plain code: the gateway hands it bytes and gets
//! bytes back; hits are copied, never re-serialized. Every merge of the gateway lives here.

pub mod documents;
pub mod facet_search;
pub mod facets;
pub mod federated;
pub mod multi;
pub mod plan;
pub mod raw;
pub mod score;
pub mod search;
pub mod stats;

pub use federated::{merge_federated, FederatedPlan, FederatedQuery};
pub use multi::merge_multi;
pub use search::{merge_search, HitPlan, MergeError, SearchPlan, ShardAnswer};
