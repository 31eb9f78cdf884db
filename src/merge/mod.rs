//! Merging shard answers into the answer one node would give (the README's section "Reads:
//! what exact means" states the contract). Plain code: the gateway hands it bytes and gets
//! bytes back; hits are copied, never re-serialized. Every merge of the gateway lives here.

pub mod documents;
pub mod facet_search;
pub mod facets;
pub mod federated;
pub mod fields;
pub mod lone;
pub mod multi;
pub mod plan;
pub mod prometheus;
pub mod raw;
pub mod score;
pub mod search;
pub mod stats;

pub use documents::{merge_documents, BrowsePlan};
pub use facet_search::merge as merge_facet_search;
pub use facets::FacetSettings;
pub use federated::{
    federated_indexes, merge_federated, prepare_federated, FederatedPlan, FederatedQuery,
    PreparedFederated,
};
pub use multi::merge_multi;
pub use plan::{prepare, MergeSettings, Prepared};
pub use search::{merge_search, HitPlan, MergeError, SearchPlan, ShardAnswer};
pub use stats::{merge_global_stats, merge_index_stats};
