//! Which replica serves: one ranking of nodes for every path that picks one (the one-node
//! proxy path, one-node reads of the gateway's own, and the owner of each shard in a fan-out
//! read). Up before down, caught up before lagging (still replaying missed writes), least
//! loaded first, then group order.

use std::cmp::Ordering;

use crate::health::NodeHealth;
use crate::topology::{NodeIdx, Topology};
use crate::transport::Transport;

/// What the ranking knows of the nodes.
#[derive(Clone, Copy)]
pub struct Replicas<'a> {
    pub topology: &'a Topology,
    pub health: &'a NodeHealth,
    pub transport: &'a dyn Transport,
}

/// A node's standing as a server of reads; lower is better.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Rank {
    /// Fails its health checks (a down verdict may be stale: such a node is a last resort).
    pub down: bool,
    /// Has missed writes to catch up on.
    pub lagging: bool,
    /// Recent response time scaled by requests in flight ([`Replicas::load`]).
    pub load: f64,
}

impl Rank {
    fn cmp(&self, other: &Rank) -> Ordering {
        self.partial_cmp(other).unwrap_or(Ordering::Equal)
    }
}

impl Replicas<'_> {
    /// How loaded `node` looks: its recent response time (a moving average) times one plus
    /// the gateway's requests in flight to it, as adaptive replica selection does.
    pub fn load(&self, node: NodeIdx) -> f64 {
        let node = &self.topology.nodes[node];
        self.health.latency(node) * (1 + self.transport.in_flight(node)) as f64
    }

    pub fn rank(&self, node: NodeIdx) -> Rank {
        let n = &self.topology.nodes[node];
        Rank {
            down: !self.health.is_up(n),
            lagging: self.health.is_lagging(n),
            load: self.load(node),
        }
    }

    pub fn is_up(&self, node: NodeIdx) -> bool {
        self.health.is_up(&self.topology.nodes[node])
    }

    /// `candidates`, best first; equal ones keep their order (group order).
    pub fn order(&self, candidates: impl IntoIterator<Item = NodeIdx>) -> Vec<NodeIdx> {
        let mut ranked: Vec<(Rank, NodeIdx)> =
            candidates.into_iter().map(|n| (self.rank(n), n)).collect();
        ranked.sort_by(|a, b| a.0.cmp(&b.0));
        ranked.into_iter().map(|(_, n)| n).collect()
    }

    /// The best of `candidates` that is up, `preferred` ones winning ties of lag (a node
    /// already asked for other shards: fewer requests, fewer shard filters).
    pub fn best_up(
        &self,
        candidates: impl IntoIterator<Item = NodeIdx>,
        preferred: impl Fn(NodeIdx) -> bool,
    ) -> Option<NodeIdx> {
        self.ranks().best_up(candidates, preferred)
    }

    /// A ranking that ranks each node once, for choices made shard by shard.
    pub fn ranks(&self) -> Ranks<'_> {
        Ranks {
            replicas: *self,
            known: vec![None; self.topology.nodes.len()],
        }
    }
}

/// Ranks of nodes, each taken once: a read of 64 shards picks an owner 64 times, over the
/// same few nodes, within one moment.
pub struct Ranks<'a> {
    replicas: Replicas<'a>,
    known: Vec<Option<Rank>>,
}

impl Ranks<'_> {
    fn of(&mut self, node: NodeIdx) -> Rank {
        match self.known.get_mut(node) {
            Some(known) => *known.get_or_insert_with(|| self.replicas.rank(node)),
            None => self.replicas.rank(node),
        }
    }

    /// [`Replicas::best_up`], with the ranks taken so far.
    pub fn best_up(
        &mut self,
        candidates: impl IntoIterator<Item = NodeIdx>,
        preferred: impl Fn(NodeIdx) -> bool,
    ) -> Option<NodeIdx> {
        candidates
            .into_iter()
            .filter_map(|n| {
                let r = self.of(n);
                (!r.down).then_some(((r.lagging, !preferred(n), r.load), n))
            })
            .min_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal))
            .map(|(_, n)| n)
    }
}
