//! Which node answers for which shard in one read: one owner per shard, healthy ones first,
//! groups in order; a node answering for only part of what it holds gets a shard filter so
//! no hit or count is doubled.

use std::collections::{BTreeMap, BTreeSet};

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

/// One owner for each of `shards`, never one in `exclude`: healthy ones first, then the
/// fastest (lowest recent latency), then group order. `Err` lists shards left without one.
pub fn choose_for(
    cluster: &Cluster<'_>,
    shards: &[u32],
    exclude: &BTreeSet<NodeIdx>,
) -> Result<Vec<Target>, Vec<u32>> {
    let topology = cluster.topology;
    let up = |n: NodeIdx| cluster.health.is_up(&topology.nodes[n]);
    let mut assigned: BTreeMap<NodeIdx, Vec<u32>> = BTreeMap::new();
    let mut orphans = Vec::new();
    for &shard in shards {
        let candidates = topology
            .owners(shard)
            .iter()
            .copied()
            .filter(|n| !exclude.contains(n));
        // Prefer a node already chosen for another shard: fewer requests, fewer filters.
        let pick = candidates
            .clone()
            .filter(|&n| up(n))
            .min_by(|&a, &b| {
                let (la, lb) = (
                    cluster.health.latency(&topology.nodes[a]),
                    cluster.health.latency(&topology.nodes[b]),
                );
                (!assigned.contains_key(&a), la)
                    .partial_cmp(&(!assigned.contains_key(&b), lb))
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .or_else(|| candidates.clone().next());
        match pick {
            Some(n) => assigned.entry(n).or_default().push(shard),
            None => orphans.push(shard),
        }
    }
    if !orphans.is_empty() {
        return Err(orphans);
    }
    let held = topology.owned_counts();
    Ok(assigned
        .into_iter()
        .map(|(node, shards)| {
            let filter = (shards.len() < held[node]).then(|| shard_tag::filter(&shards));
            Target {
                node,
                shards,
                filter,
            }
        })
        .collect())
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
