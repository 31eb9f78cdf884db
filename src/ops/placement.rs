//! Which node answers for which shard in one read: one owner per shard among those passing
//! their health checks, caught-up and fast ones first; a node answering for only part of what it holds gets a shard filter so
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

/// One owner for each of `shards`, never one in `exclude` nor one failing its health checks
/// (it is not tried until it recovers): caught-up ones first (not replaying missed writes),
/// then the least loaded ([`Cluster::load`]), then group order. `Err` lists shards left
/// without one.
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
            .filter(|&n| !exclude.contains(&n) && up(n));
        // Prefer a node already chosen for another shard: fewer requests, fewer filters.
        let lagging = |n: NodeIdx| cluster.health.is_lagging(&topology.nodes[n]);
        let pick = candidates.min_by(|&a, &b| {
            let (la, lb) = (cluster.load(a), cluster.load(b));
            (lagging(a), !assigned.contains_key(&a), la)
                .partial_cmp(&(lagging(b), !assigned.contains_key(&b), lb))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
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
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::config::{ClusterSpec, HealthSettings, Limits, NodeSpec, Timeouts};
    use crate::health::NodeHealth;
    use crate::metrics::Metrics;
    use crate::node_client::NodeClient;
    use crate::topology::{Topology, TopologyStore};
    use serde_json::json;

    /// Two groups (`a0`, `a1` | `b0`, `b1`), 8 shards, one owner per group; nodes never
    /// checked count as up.
    fn fleet() -> (Arc<TopologyStore>, NodeHealth, NodeClient, Metrics) {
        let specs: Vec<NodeSpec> = ["a0", "a1", "b0", "b1"]
            .iter()
            .enumerate()
            .map(|(i, id)| NodeSpec {
                id: id.to_string(),
                url: format!("http://127.0.0.1:{}", 7100 + i),
                authority: format!("127.0.0.1:{}", 7100 + i),
                addr: ([127, 0, 0, 1], 7100 + i as u16).into(),
                group: id[..1].to_string(),
            })
            .collect();
        let spec = ClusterSpec {
            shards: 8,
            replication_factor: 1,
        };
        let store = Arc::new(TopologyStore::new(Topology::new(&spec, &specs, 1)));
        let second = Duration::from_secs(1);
        let settings = HealthSettings {
            interval: second,
            timeout: second,
            failures_before_down: 1,
            successes_before_up: 1,
        };
        let health = NodeHealth::new(store.clone(), settings, Arc::new(Metrics::new()));
        let client = NodeClient::new(
            Timeouts {
                connect: second,
                read: second,
                write: second,
                idle: second,
                request: second,
            },
            Limits {
                node_concurrency: 8,
            },
        );
        (store, health, client, Metrics::new())
    }

    fn chosen(targets: &[Target], topology: &Topology) -> BTreeSet<String> {
        targets
            .iter()
            .map(|t| topology.nodes[t.node].id.clone())
            .collect()
    }

    #[test]
    fn every_shard_once_lagging_and_excluded_nodes_avoided() {
        let (store, health, client, metrics) = fleet();
        let topology = store.snapshot();
        let cluster = Cluster::new(&topology, &client, &health, None, &metrics);
        let all: Vec<u32> = (0..8).collect();
        let covered = |targets: &[Target]| {
            let mut shards: Vec<u32> = targets.iter().flat_map(|t| t.shards.clone()).collect();
            shards.sort();
            shards
        };

        let targets = choose_for(&cluster, &all, &BTreeSet::new()).unwrap();
        assert_eq!(covered(&targets), all);
        // Ties go to group order: group a answers for everything, with no shard filter.
        assert_eq!(
            chosen(&targets, &topology),
            ["a0", "a1"].map(String::from).into()
        );
        assert!(targets.iter().all(|t| t.filter.is_none()));

        // A node catching up on missed writes is passed over while a replica can answer.
        health.set_lagging(["a0".to_string()].into());
        let targets = choose_for(&cluster, &all, &BTreeSet::new()).unwrap();
        assert_eq!(covered(&targets), all);
        assert!(!chosen(&targets, &topology).contains("a0"));

        // ... but still answers when its replica is excluded (failed in this request).
        let b = |id: &str| topology.node_by_id(id).unwrap();
        let targets = choose_for(&cluster, &all, &[b("b0"), b("b1")].into()).unwrap();
        assert_eq!(
            chosen(&targets, &topology),
            ["a0", "a1"].map(String::from).into()
        );

        // Excluding both owners of a shard leaves it orphaned.
        let orphans = choose_for(&cluster, &all, &[b("a0"), b("b0")].into()).unwrap_err();
        assert!(!orphans.is_empty());
        assert!(orphans.iter().all(|&s| topology
            .owners(s)
            .iter()
            .all(|&n| n == b("a0") || n == b("b0"))));
    }

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
