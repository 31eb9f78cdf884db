//! Online rebalancing: the planner and the moves that carry shards to their new owners.

pub mod gate;
pub mod plan;
