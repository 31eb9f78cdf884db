//! Which nodes hold each shard: the gateway's own durable state, apart from the configuration.
//!
//! The configuration says which nodes *should* exist; the placement says which node *holds*
//! each shard in each replica group, and changes only when a move finishes (see
//! [`crate::rebalance`]). A data directory without one starts from the rendezvous owners the
//! gateway always used, so an existing cluster upgrades without moving anything.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{ClusterSpec, NodeSpec};
use crate::routing;

/// A node a shard lives on, with the address to reach it: a node removed from the
/// configuration keeps serving its shards until they have moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedNode {
    pub id: String,
    pub url: String,
    pub group: String,
}

/// The owners of every shard in every replica group, at one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// Increases by one with every change of owner.
    pub epoch: u64,
    pub shards: u32,
    pub replication_factor: usize,
    pub groups: Vec<String>,
    pub nodes: Vec<PlacedNode>,
    /// `owners[(shard * groups + group) * rf + k]`: the id of the k-th owner.
    pub owners: Vec<String>,
}

impl Placement {
    /// Epoch 0: the rendezvous owners of `specs`, group by group in their order of appearance.
    pub fn rendezvous(cluster: &ClusterSpec, specs: &[NodeSpec]) -> Placement {
        let mut groups: Vec<String> = Vec::new();
        for spec in specs {
            if !groups.contains(&spec.group) {
                groups.push(spec.group.clone());
            }
        }
        let members: Vec<Vec<&str>> = groups
            .iter()
            .map(|g| {
                specs
                    .iter()
                    .filter(|s| &s.group == g)
                    .map(|s| s.id.as_str())
                    .collect()
            })
            .collect();
        let rf = cluster.replication_factor;
        let mut owners = Vec::with_capacity(cluster.shards as usize * groups.len() * rf);
        for shard in 0..cluster.shards {
            for ids in &members {
                for i in routing::owners(ids, shard, rf) {
                    owners.push(ids[i].to_string());
                }
            }
        }
        Placement {
            epoch: 0,
            shards: cluster.shards,
            replication_factor: rf,
            groups,
            nodes: specs
                .iter()
                .map(|s| PlacedNode {
                    id: s.id.clone(),
                    url: s.url.clone(),
                    group: s.group.clone(),
                })
                .collect(),
            owners,
        }
    }

    fn index(&self, shard: u32, group: usize, k: usize) -> usize {
        (shard as usize * self.groups.len() + group) * self.replication_factor + k
    }

    /// The node holding slot `k` of `shard` in `group`.
    pub fn owner(&self, shard: u32, group: usize, k: usize) -> &str {
        &self.owners[self.index(shard, group, k)]
    }

    /// The owners of `shard` in `group`.
    pub fn owners_in_group(&self, shard: u32, group: usize) -> &[String] {
        let start = self.index(shard, group, 0);
        &self.owners[start..start + self.replication_factor]
    }

    /// Gives slot `k` of `shard` in `group` to `node`.
    pub fn set_owner(&mut self, shard: u32, group: usize, k: usize, node: &str) {
        let i = self.index(shard, group, k);
        self.owners[i] = node.to_string();
    }

    /// The index of a group by name.
    pub fn group(&self, name: &str) -> Option<usize> {
        self.groups.iter().position(|g| g == name)
    }

    /// Slots held by each node.
    pub fn counts(&self) -> BTreeMap<&str, usize> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for id in &self.owners {
            *counts.entry(id.as_str()).or_default() += 1;
        }
        counts
    }

    /// Keeps the address of every node that holds a slot or is in `keep`, taking newer ones
    /// from `specs`, and forgets the others.
    pub fn refresh_nodes(&mut self, specs: &[NodeSpec], keep: &[String]) {
        let mut held: std::collections::BTreeSet<String> =
            self.counts().keys().map(|k| k.to_string()).collect();
        held.extend(keep.iter().cloned());
        let mut nodes: Vec<PlacedNode> = Vec::new();
        for spec in specs.iter().filter(|s| held.contains(&s.id)) {
            nodes.push(PlacedNode {
                id: spec.id.clone(),
                url: spec.url.clone(),
                group: spec.group.clone(),
            });
        }
        for old in &self.nodes {
            if held.contains(&old.id) && !nodes.iter().any(|n| n.id == old.id) {
                nodes.push(old.clone());
            }
        }
        self.nodes = nodes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec(id: &str, port: u16, group: &str) -> NodeSpec {
        NodeSpec {
            id: id.into(),
            url: format!("http://127.0.0.1:{port}"),
            authority: format!("127.0.0.1:{port}"),
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            group: group.into(),
            weight: 1,
        }
    }

    #[test]
    fn epoch_zero_is_the_rendezvous_placement() {
        let specs = [spec("a", 1, "g"), spec("b", 2, "g"), spec("c", 3, "h")];
        let cluster = ClusterSpec {
            shards: 32,
            replication_factor: 1,
        };
        let p = Placement::rendezvous(&cluster, &specs);
        assert_eq!(p.epoch, 0);
        assert_eq!(p.groups, ["g", "h"]);
        for s in 0..32 {
            let want = routing::owners(&["a", "b"], s, 1)[0];
            assert_eq!(p.owner(s, 0, 0), ["a", "b"][want]);
            assert_eq!(p.owner(s, 1, 0), "c");
        }
        let counts = p.counts();
        assert_eq!(counts["c"], 32);
        assert_eq!(counts["a"] + counts["b"], 32);
    }

    #[test]
    fn nodes_without_slots_are_forgotten() {
        let specs = [spec("a", 1, "g"), spec("b", 2, "g")];
        let cluster = ClusterSpec {
            shards: 8,
            replication_factor: 1,
        };
        let mut p = Placement::rendezvous(&cluster, &specs);
        for s in 0..8 {
            p.set_owner(s, 0, 0, "a");
        }
        // `b` holds nothing now; `a` keeps its address even once it leaves the configuration.
        p.refresh_nodes(&[spec("c", 3, "g")], &[]);
        assert_eq!(p.nodes.len(), 1);
        assert_eq!(p.nodes[0].id, "a");
    }
}
