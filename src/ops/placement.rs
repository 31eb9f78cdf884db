//! Which node answers for which shard in one read: one owner per shard, healthy ones first,
//! groups in order; a node answering for only part of what it holds gets a shard filter so
//! no hit or count is doubled.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::cluster::Cluster;
use crate::shard_tag;
use crate::topology::NodeIdx;

/// A node to ask, and the shard filter it needs (`None`: it answers for all it holds).
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub node: NodeIdx,
    pub shards: Vec<u32>,
    pub filter: Option<String>,
}

/// One owner per shard. `None` if some shard has no owner at all (empty topology).
pub fn choose(cluster: &Cluster<'_>) -> Option<Vec<Target>> {
    let topology = cluster.topology;
    let up = |n: NodeIdx| cluster.health.is_up(&topology.nodes[n]);
    let mut assigned: BTreeMap<NodeIdx, Vec<u32>> = BTreeMap::new();
    for shard in 0..topology.shards {
        let owners = topology.owners(shard);
        let pick = owners
            .iter()
            .copied()
            .find(|&n| up(n))
            .or_else(|| owners.first().copied())?;
        assigned.entry(pick).or_default().push(shard);
    }
    let held = topology.owned_counts();
    Some(
        assigned
            .into_iter()
            .map(|(node, shards)| {
                let filter = (shards.len() < held[node]).then(|| shard_tag::filter(&shards));
                Target {
                    node,
                    shards,
                    filter,
                }
            })
            .collect(),
    )
}

/// The client's `filter` (string, array or absent) ANDed with a shard filter.
pub fn and_filter(client: Option<&Value>, shard_filter: &str) -> Value {
    let tag = Value::from(shard_filter);
    match client {
        None | Some(Value::Null) => tag,
        Some(Value::Array(items)) => {
            let mut items = items.clone();
            items.push(tag);
            Value::Array(items)
        }
        Some(other) => Value::Array(vec![other.clone(), tag]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_combine_with_and() {
        assert_eq!(and_filter(None, "T"), json!("T"));
        assert_eq!(
            and_filter(Some(&json!("a = 1")), "T"),
            json!(["a = 1", "T"])
        );
        assert_eq!(
            and_filter(Some(&json!(["a = 1", ["b = 2", "c = 3"]])), "T"),
            json!(["a = 1", ["b = 2", "c = 3"], "T"])
        );
    }
}
