//! The cluster as the gateway sees it: nodes, replica groups and the owners of every shard,
//! built from the configuration and the effective placement, and swapped atomically on
//! reload and whenever a shard changes owner.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{ClusterSpec, NodeSpec};
use crate::placement::Placement;

/// Index of a node in [`Topology::nodes`].
pub type NodeIdx = usize;

pub use crate::split::NOBODY;

/// One Meilisearch node of the topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    pub url: String,
    pub authority: String,
    pub addr: SocketAddr,
    /// Index in [`Topology::groups`].
    pub group: usize,
    /// No longer in the configuration: it serves its shards until they have moved.
    pub draining: bool,
}

/// A replica group: its members together hold every shard once per replication factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub members: Vec<NodeIdx>,
}

/// A shard moving to a node: writes to it are recorded for that node until it takes over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorder {
    pub move_id: u64,
    pub shard: u32,
    pub node: NodeIdx,
}

/// An immutable, validated topology. Requests hold one `Arc<Topology>` from start to end.
#[derive(Debug)]
pub struct Topology {
    /// Increases by one on every swap (reload or change of owner).
    pub generation: u64,
    /// The placement's epoch.
    pub epoch: u64,
    pub shards: u32,
    pub replication_factor: usize,
    pub nodes: Vec<Node>,
    pub groups: Vec<Group>,
    /// `owners[(shard * groups + group) * rf + k]`: the k-th owner of a shard in a group.
    owners: Vec<NodeIdx>,
    /// Moving shards whose writes are recorded for their next owner.
    pub recorders: Vec<Recorder>,
    /// Owners, then one column per recorder of the shard (virtual nodes past `nodes`), padded
    /// with [`NOBODY`]; the same as `owners` when nothing moves.
    write_table: Vec<usize>,
    write_copies: usize,
    /// Nodes that may hold documents of shards they do not own (a copy in progress, a
    /// cleanup not done): reads from them always filter by shard.
    unsettled: Vec<bool>,
    /// Nodes holding at least one shard (see [`Topology::serving_nodes`]).
    serving: Vec<NodeIdx>,
    /// Shard slots each node owns (see [`Topology::owned_counts`]).
    owned: Vec<usize>,
}

impl Topology {
    /// The rendezvous topology of `specs` (no data directory: tests and tools).
    pub fn new(cluster: &ClusterSpec, specs: &[NodeSpec], generation: u64) -> Topology {
        let placement = Placement::rendezvous(cluster, specs);
        Topology::build(&placement, specs, &[], &[], generation)
    }

    /// The topology of `placement`: the configured nodes in their order, then nodes the
    /// placement still uses (draining). `recorders` are `(move id, shard, node id)`;
    /// `unsettled` names nodes reads must filter.
    pub fn build(
        placement: &Placement,
        specs: &[NodeSpec],
        recorders: &[(u64, u32, String)],
        unsettled: &[String],
        generation: u64,
    ) -> Topology {
        let mut groups: Vec<Group> = placement
            .groups
            .iter()
            .map(|name| Group {
                name: name.clone(),
                members: Vec::new(),
            })
            .collect();
        let mut nodes: Vec<Node> = Vec::with_capacity(specs.len());
        let mut add = |node: Node, group: &str, groups: &mut Vec<Group>| {
            let g = match groups.iter().position(|g| g.name == group) {
                Some(g) => g,
                None => {
                    groups.push(Group {
                        name: group.to_string(),
                        members: Vec::new(),
                    });
                    groups.len() - 1
                }
            };
            groups[g].members.push(nodes.len());
            nodes.push(Node { group: g, ..node });
        };
        for spec in specs {
            let node = Node {
                id: spec.id.clone(),
                url: spec.url.clone(),
                authority: spec.authority.clone(),
                addr: spec.addr,
                group: 0,
                draining: false,
            };
            add(node, &spec.group, &mut groups);
        }
        for placed in &placement.nodes {
            if specs.iter().any(|s| s.id == placed.id) {
                continue;
            }
            let Ok((authority, addr)) = crate::config::node_address(&placed.url) else {
                log::error!("node {} has an unusable address {}", placed.id, placed.url);
                continue;
            };
            let node = Node {
                id: placed.id.clone(),
                url: placed.url.clone(),
                authority,
                addr,
                group: 0,
                draining: true,
            };
            add(node, &placed.group, &mut groups);
        }
        let index = |id: &str| nodes.iter().position(|n| n.id == id);
        let owners: Vec<NodeIdx> = placement
            .owners
            .iter()
            .map(|id| index(id).unwrap_or(NOBODY))
            .collect();
        let copies = placement.groups.len() * placement.replication_factor;
        let recorders: Vec<Recorder> = recorders
            .iter()
            .filter_map(|(move_id, shard, id)| {
                Some(Recorder {
                    move_id: *move_id,
                    shard: *shard,
                    node: index(id)?,
                })
            })
            .collect();
        let extra = (0..placement.shards)
            .map(|s| recorders.iter().filter(|r| r.shard == s).count())
            .max()
            .unwrap_or(0);
        let write_copies = copies + extra;
        let mut write_table = Vec::with_capacity(placement.shards as usize * write_copies);
        for s in 0..placement.shards as usize {
            write_table.extend_from_slice(&owners[s * copies..(s + 1) * copies]);
            let mut virtual_nodes: Vec<usize> = recorders
                .iter()
                .enumerate()
                .filter(|(_, r)| r.shard as usize == s)
                .map(|(i, _)| nodes.len() + i)
                .collect();
            virtual_nodes.resize(extra, NOBODY);
            write_table.extend(virtual_nodes);
        }
        let serving: Vec<NodeIdx> = {
            let holding: Vec<NodeIdx> = (0..nodes.len()).filter(|n| owners.contains(n)).collect();
            if holding.is_empty() {
                (0..nodes.len()).collect()
            } else {
                holding
            }
        };
        let mut owned = vec![0; nodes.len()];
        for &n in &owners {
            if let Some(c) = owned.get_mut(n) {
                *c += 1;
            }
        }
        let unsettled = nodes
            .iter()
            .map(|n| {
                unsettled.contains(&n.id) || recorders.iter().any(|r| nodes[r.node].id == n.id)
            })
            .collect();
        Topology {
            generation,
            epoch: placement.epoch,
            shards: placement.shards,
            replication_factor: placement.replication_factor,
            nodes,
            groups,
            owners,
            recorders,
            write_table,
            write_copies,
            unsettled,
            serving,
            owned,
        }
    }

    /// Whether `other` places everything as this one does (its generation aside).
    pub fn same_as(&self, other: &Topology) -> bool {
        self.epoch == other.epoch
            && self.nodes == other.nodes
            && self.groups == other.groups
            && self.owners == other.owners
            && self.recorders == other.recorders
            && self.unsettled == other.unsettled
            && self.serving == other.serving
    }

    /// Where a document batch goes, for [`crate::split::split`]: every owner of its shard,
    /// plus the recorder of a moving shard (a virtual node past [`Topology::nodes`]).
    pub fn write_placement(&self) -> crate::split::Placement<'_> {
        crate::split::Placement {
            shards: self.shards,
            nodes: self.nodes.len() + self.recorders.len(),
            copies: self.write_copies,
            table: &self.write_table,
        }
    }

    /// The owners of `shard`, then the virtual nodes recording it (see
    /// [`Topology::write_placement`]).
    pub fn write_owners(&self, shard: u32) -> impl Iterator<Item = usize> + '_ {
        self.write_placement()
            .owners(shard)
            .iter()
            .copied()
            .filter(|&n| n != NOBODY)
    }

    /// The recorder behind a virtual node of [`Topology::write_placement`].
    pub fn recorder(&self, virtual_node: usize) -> Option<&Recorder> {
        virtual_node
            .checked_sub(self.nodes.len())
            .and_then(|i| self.recorders.get(i))
    }

    /// Whether reads from `node` must filter by shard even when it answers for all it owns.
    pub fn unsettled(&self, node: NodeIdx) -> bool {
        self.unsettled.get(node).copied().unwrap_or(false)
    }

    /// The nodes that answer reads any node can answer: those holding a shard (a node just
    /// added lacks the indexes until its first shard arrives), or every node if none does.
    pub fn serving_nodes(&self) -> &[NodeIdx] {
        &self.serving
    }

    /// Whether writes go to `node`: every node but one leaving the fleet with no shard left
    /// (it is dropped once its last tasks are known).
    pub fn takes_writes(&self, node: NodeIdx) -> bool {
        self.nodes.get(node).is_some_and(|n| !n.draining) || self.serves(node)
    }

    /// The nodes writes to every node go to (see [`Topology::takes_writes`]).
    pub fn write_nodes(&self) -> Vec<NodeIdx> {
        (0..self.nodes.len())
            .filter(|&n| self.takes_writes(n))
            .collect()
    }

    /// Whether `node` holds any shard (a node added to the fleet holds none until its first
    /// move finishes, and lacks the indexes until then).
    pub fn serves(&self, node: NodeIdx) -> bool {
        self.owners.contains(&node)
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

    /// The owners of `shard` within one group.
    pub fn owners_in_group(&self, shard: u32, group: usize) -> &[NodeIdx] {
        let rf = self.replication_factor;
        let all = self.owners(shard);
        &all[group * rf..(group + 1) * rf]
    }

    /// How many shards each node owns, in [`Topology::nodes`] order.
    pub fn owned_counts(&self) -> &[usize] {
        &self.owned
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
            weight: 1,
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
