//! The cluster as the gateway sees it: nodes, replica groups and the owners of every shard,
//! computed once per configuration and swapped atomically on reload.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{ClusterSpec, NodeSpec};
use crate::routing;

/// Index of a node in [`Topology::nodes`].
pub type NodeIdx = usize;

/// One Meilisearch node of the topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    pub url: String,
    pub authority: String,
    pub addr: SocketAddr,
    /// Index in [`Topology::groups`].
    pub group: usize,
}

/// A replica group: its members together hold every shard once per replication factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub members: Vec<NodeIdx>,
}

/// An immutable, validated topology. Requests hold one `Arc<Topology>` from start to end.
#[derive(Debug)]
pub struct Topology {
    /// Increases by one on every successful reload.
    pub generation: u64,
    pub shards: u32,
    pub replication_factor: usize,
    pub nodes: Vec<Node>,
    pub groups: Vec<Group>,
    /// `owners[(shard * groups + group) * rf + k]`: the k-th owner of a shard in a group.
    owners: Vec<NodeIdx>,
}

impl Topology {
    /// Builds the owner table. The specs must come from a validated [`crate::config::Config`].
    pub fn new(cluster: &ClusterSpec, specs: &[NodeSpec], generation: u64) -> Topology {
        let mut groups: Vec<Group> = Vec::new();
        let mut nodes = Vec::with_capacity(specs.len());
        for (idx, spec) in specs.iter().enumerate() {
            let g = match groups.iter().position(|g| g.name == spec.group) {
                Some(g) => g,
                None => {
                    groups.push(Group {
                        name: spec.group.clone(),
                        members: Vec::new(),
                    });
                    groups.len() - 1
                }
            };
            groups[g].members.push(idx);
            nodes.push(Node {
                id: spec.id.clone(),
                url: spec.url.clone(),
                authority: spec.authority.clone(),
                addr: spec.addr,
                group: g,
            });
        }
        let rf = cluster.replication_factor;
        let mut owners = Vec::with_capacity(cluster.shards as usize * groups.len() * rf);
        for shard in 0..cluster.shards {
            for group in &groups {
                let ids: Vec<&str> = group
                    .members
                    .iter()
                    .map(|&n| nodes[n].id.as_str())
                    .collect();
                let picked = routing::owners(&ids, shard, rf);
                owners.extend(picked.into_iter().map(|i| group.members[i]));
            }
        }
        Topology {
            generation,
            shards: cluster.shards,
            replication_factor: rf,
            nodes,
            groups,
            owners,
        }
    }

    /// Every owner of `shard`, all groups together, best first within each group.
    pub fn owners(&self, shard: u32) -> &[NodeIdx] {
        let per_shard = self.groups.len() * self.replication_factor;
        let start = shard as usize * per_shard;
        &self.owners[start..start + per_shard]
    }

    /// Owners per shard: replica groups times replication factor.
    pub fn copies(&self) -> usize {
        self.groups.len() * self.replication_factor
    }

    /// Where documents go, for [`crate::split::split`].
    pub fn placement(&self) -> crate::split::Placement<'_> {
        crate::split::Placement {
            shards: self.shards,
            nodes: self.nodes.len(),
            copies: self.copies(),
            table: &self.owners,
        }
    }

    /// The owners of `shard` within one group.
    pub fn owners_in_group(&self, shard: u32, group: usize) -> &[NodeIdx] {
        let rf = self.replication_factor;
        let all = self.owners(shard);
        &all[group * rf..(group + 1) * rf]
    }

    /// How many shards each node owns, in [`Topology::nodes`] order.
    pub fn owned_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.nodes.len()];
        for &n in &self.owners {
            counts[n] += 1;
        }
        counts
    }

    /// The node with this id.
    pub fn node_by_id(&self, id: &str) -> Option<NodeIdx> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// Shards none of whose owners is up according to `is_up`.
    pub fn unavailable_shards(&self, is_up: impl Fn(NodeIdx) -> bool) -> Vec<u32> {
        (0..self.shards)
            .filter(|&s| !self.owners(s).iter().any(|&n| is_up(n)))
            .collect()
    }
}

/// The current topology, replaced as a whole on reload. Readers take one snapshot per request.
pub struct TopologyStore {
    current: ArcSwap<Topology>,
}

impl TopologyStore {
    pub fn new(initial: Topology) -> Self {
        TopologyStore {
            current: ArcSwap::from_pointee(initial),
        }
    }

    /// One consistent snapshot: keep it for the whole request.
    pub fn snapshot(&self) -> Arc<Topology> {
        self.current.load_full()
    }

    /// Publishes `next`; requests that already hold a snapshot keep theirs.
    pub fn swap(&self, next: Topology) {
        self.current.store(Arc::new(next));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, port: u16, group: &str) -> NodeSpec {
        NodeSpec {
            id: id.into(),
            url: format!("http://127.0.0.1:{port}"),
            authority: format!("127.0.0.1:{port}"),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            group: group.into(),
        }
    }

    #[test]
    fn every_shard_has_rf_owners_in_every_group() {
        let specs = [
            spec("a1", 1, "a"),
            spec("a2", 2, "a"),
            spec("a3", 3, "a"),
            spec("b1", 4, "b"),
            spec("b2", 5, "b"),
        ];
        let t = Topology::new(
            &ClusterSpec {
                shards: 64,
                replication_factor: 2,
            },
            &specs,
            1,
        );
        assert_eq!(t.groups.len(), 2);
        for s in 0..64 {
            let all = t.owners(s);
            assert_eq!(all.len(), 4);
            for g in 0..2 {
                let own = t.owners_in_group(s, g);
                assert_eq!(own.len(), 2);
                assert_ne!(own[0], own[1]);
                assert!(own.iter().all(|&n| t.nodes[n].group == g));
            }
        }
        // Group b has two nodes and rf 2: both own every shard.
        let counts = t.owned_counts();
        assert_eq!(counts[3], 64);
        assert_eq!(counts[4], 64);
        assert_eq!(counts[..3].iter().sum::<usize>(), 128);
    }

    #[test]
    fn unavailable_shards_need_every_owner_down() {
        let specs = [spec("a", 1, "g"), spec("b", 2, "g"), spec("c", 3, "g")];
        let t = Topology::new(
            &ClusterSpec {
                shards: 16,
                replication_factor: 1,
            },
            &specs,
            1,
        );
        assert!(t.unavailable_shards(|_| true).is_empty());
        let down = t.node_by_id("b").unwrap();
        let lost = t.unavailable_shards(|n| n != down);
        assert_eq!(lost.len(), t.owned_counts()[down]);
        assert!(lost.iter().all(|&s| t.owners(s) == [down]));
    }

    #[test]
    fn a_snapshot_survives_a_swap() {
        let specs = [spec("a", 1, "g")];
        let store = TopologyStore::new(Topology::new(
            &ClusterSpec {
                shards: 4,
                replication_factor: 1,
            },
            &specs,
            1,
        ));
        let before = store.snapshot();
        store.swap(Topology::new(
            &ClusterSpec {
                shards: 4,
                replication_factor: 1,
            },
            &specs,
            2,
        ));
        assert_eq!(before.generation, 1);
        assert_eq!(store.snapshot().generation, 2);
    }
}
