//! One read over the fleet, as attempts: every unit (a shard, or the single unit of a
//! one-node read) is answered by exactly one node. A node that fails hands its units to other
//! candidates; one slower than its hedge delay gets other candidates asked as well (a hedge),
//! and the first complete cover wins, the requests it makes useless being cancelled; all
//! within the read's deadline. Fan-out reads ([`crate::cluster::Cluster::gather`]) and
//! one-node reads ([`crate::cluster::Cluster::send_any`]) both run on it.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;

use futures::future::{AbortHandle, Abortable, Aborted};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::shard_tag;
use crate::topology::NodeIdx;
use crate::transport::{NodeError, NodeRequest, NodeResponse};

/// A node to ask, the units it answers for, and the shard filter it needs (`None`: it
/// answers for everything it holds).
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub node: NodeIdx,
    pub shards: Vec<u32>,
    pub filter: Option<String>,
}

/// What a node's answer means for the read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It answers for its units.
    Take,
    /// It is the answer to the whole read (a client error any node would give).
    Stop,
    /// The node failed: its units go to another candidate.
    Retry,
}

/// How one read spreads over the nodes.
pub struct Spread<'s> {
    /// How many units the read has (shards `0..units`).
    pub units: u32,
    /// Whether a unit is served by the shards' owners (with shard filters where a node
    /// answers for part of what it holds) or by any node (one unit, no filter).
    pub by_shard: bool,
    /// Attempts at a unit after the first, on other candidates, before the read fails.
    pub max_failovers: usize,
    /// The request a target gets.
    pub request: &'s (dyn Fn(&Target) -> NodeRequest + Sync),
    /// How an answer is judged.
    pub judge: fn(u16) -> Verdict,
}

/// Why a read has no complete answer.
#[derive(Debug)]
pub enum ReadError {
    /// A node's answer that is the answer to the whole read ([`Verdict::Stop`]).
    Stopped(NodeIdx, Box<NodeResponse>),
    /// Units no candidate answered, why each attempt failed, and the last transport error.
    Unavailable {
        units: Vec<u32>,
        reasons: Vec<String>,
        last: Option<NodeError>,
    },
}

/// Runs the read; the answers cover every unit exactly once.
pub async fn run(
    cluster: &Cluster<'_>,
    spread: &Spread<'_>,
) -> Result<Vec<(NodeIdx, NodeResponse)>, ReadError> {
    let deadline = cluster.reads.deadline;
    let mut read = Read::new(cluster, spread);
    match tokio::time::timeout(deadline, read.run()).await {
        Ok(result) => result,
        Err(_) => {
            read.reasons.push(format!(
                "no answer within the request deadline of {} ms",
                deadline.as_millis()
            ));
            Err(ReadError::Unavailable {
                units: read.unanswered(),
                reasons: std::mem::take(&mut read.reasons),
                last: Some(NodeError::Timeout),
            })
        }
    }
}

/// One request to one node for some units.
struct Attempt {
    node: NodeIdx,
    shards: Vec<u32>,
    /// Whether it is a hedge of a slower attempt.
    hedge: bool,
    started: Instant,
    /// When to hedge it, if it may be.
    hedge_at: Option<Instant>,
    /// In flight and counted as covering its units.
    live: bool,
    abort: AbortHandle,
}

type Outcome = (usize, Result<Result<NodeResponse, NodeError>, Aborted>);
type InFlight<'f> = FuturesUnordered<Pin<Box<dyn Future<Output = Outcome> + Send + 'f>>>;

struct Read<'c, 's> {
    cluster: &'c Cluster<'c>,
    spread: &'s Spread<'s>,
    answered: Vec<bool>,
    /// Live attempts covering each unit.
    covering: Vec<u16>,
    tries: Vec<usize>,
    failed: BTreeSet<NodeIdx>,
    attempts: Vec<Attempt>,
    answers: Vec<(NodeIdx, NodeResponse)>,
    reasons: Vec<String>,
    last: Option<NodeError>,
}

impl<'c, 's> Read<'c, 's> {
    fn new(cluster: &'c Cluster<'c>, spread: &'s Spread<'s>) -> Self {
        let units = spread.units as usize;
        Read {
            cluster,
            spread,
            answered: vec![false; units],
            covering: vec![0; units],
            tries: vec![0; units],
            failed: BTreeSet::new(),
            attempts: Vec::new(),
            answers: Vec::new(),
            reasons: Vec::new(),
            last: None,
        }
    }

    fn unanswered(&self) -> Vec<u32> {
        (0..self.answered.len() as u32)
            .filter(|&s| !self.answered[s as usize])
            .collect()
    }

    fn unavailable(&mut self, units: Vec<u32>) -> ReadError {
        ReadError::Unavailable {
            units,
            reasons: std::mem::take(&mut self.reasons),
            last: self.last.take(),
        }
    }

    async fn run(&mut self) -> Result<Vec<(NodeIdx, NodeResponse)>, ReadError> {
        let mut in_flight: InFlight<'c> = FuturesUnordered::new();
        loop {
            // Units no live attempt covers (first round, or their candidate failed).
            let uncovered: Vec<u32> = self
                .unanswered()
                .into_iter()
                .filter(|&s| self.covering[s as usize] == 0)
                .collect();
            if !uncovered.is_empty() {
                if uncovered
                    .iter()
                    .any(|&s| self.tries[s as usize] > self.spread.max_failovers)
                {
                    return Err(self.unavailable(uncovered));
                }
                for &s in &uncovered {
                    self.tries[s as usize] += 1;
                }
                let exclude = self.failed.clone();
                if let Err(orphans) = self.launch(&mut in_flight, &uncovered, &exclude, false) {
                    return Err(self.unavailable(orphans));
                }
            }
            if self.answered.iter().all(|&a| a) {
                return Ok(std::mem::take(&mut self.answers));
            }
            let hedge_at = self.attempts.iter().filter_map(|a| a.hedge_at).min();
            tokio::select! {
                Some((id, outcome)) = in_flight.next() => self.settle(id, outcome)?,
                _ = tokio::time::sleep_until(hedge_at.unwrap_or_else(Instant::now)),
                    if hedge_at.is_some() => self.hedge(&mut in_flight),
                // Unreachable: an unanswered unit always has a live attempt.
                else => {
                    let units = self.unanswered();
                    return Err(self.unavailable(units));
                }
            }
        }
    }

    /// The nodes that can answer for `unit`.
    fn candidates(&self, unit: u32) -> &'c [NodeIdx] {
        if self.spread.by_shard {
            self.cluster.topology.owners(unit)
        } else {
            self.cluster.topology.serving_nodes()
        }
    }

    /// One candidate for each of `units`, never one in `exclude`. Shard reads take only nodes
    /// passing their health checks (a node marked down is not tried until it recovers);
    /// one-node reads try them last (any node will do, and a down verdict may be stale).
    fn choose(&self, units: &[u32], exclude: &BTreeSet<NodeIdx>) -> Result<Vec<Target>, Vec<u32>> {
        let replicas = self.cluster.replicas();
        let mut ranks = replicas.ranks();
        let mut assigned: BTreeMap<NodeIdx, Vec<u32>> = BTreeMap::new();
        let mut orphans = Vec::new();
        for &unit in units {
            let candidates = self
                .candidates(unit)
                .iter()
                .copied()
                .filter(|n| !exclude.contains(n));
            let pick = if self.spread.by_shard {
                ranks.best_up(candidates, |n| assigned.contains_key(&n))
            } else {
                replicas.order(candidates).first().copied()
            };
            match pick {
                Some(n) => assigned.entry(n).or_default().push(unit),
                None => orphans.push(unit),
            }
        }
        if !orphans.is_empty() {
            return Err(orphans);
        }
        let held = self.cluster.topology.owned_counts();
        Ok(assigned
            .into_iter()
            .map(|(node, shards)| {
                let partial = self.spread.by_shard
                    && (shards.len() < held[node] || self.cluster.topology.unsettled(node));
                let filter = partial.then(|| shard_tag::filter(&shards));
                Target {
                    node,
                    shards,
                    filter,
                }
            })
            .collect())
    }

    /// Sends requests covering `units`, never to a node in `exclude`.
    fn launch(
        &mut self,
        in_flight: &mut InFlight<'c>,
        units: &[u32],
        exclude: &BTreeSet<NodeIdx>,
        hedge: bool,
    ) -> Result<(), Vec<u32>> {
        let cluster = self.cluster;
        for target in self.choose(units, exclude)? {
            let request = (self.spread.request)(&target);
            let (abort, registration) = AbortHandle::new_pair();
            let id = self.attempts.len();
            for &s in &target.shards {
                self.covering[s as usize] += 1;
            }
            let hedge_at = if hedge || !self.has_alternative(&target) {
                None
            } else {
                let node = &cluster.topology.nodes[target.node];
                cluster
                    .reads
                    .hedge_delay(cluster.health, node)
                    .map(|d| Instant::now() + d)
            };
            self.attempts.push(Attempt {
                node: target.node,
                shards: target.shards,
                hedge,
                started: Instant::now(),
                hedge_at,
                live: true,
                abort,
            });
            if hedge {
                cluster.metrics.hedges.inc();
            }
            let node = target.node;
            in_flight.push(Box::pin(async move {
                let send = Abortable::new(cluster.send(node, &request), registration);
                (id, send.await)
            }));
        }
        Ok(())
    }

    /// Candidates other than `node` that could answer for `unit` now.
    fn others(&self, unit: u32, exclude: &BTreeSet<NodeIdx>) -> bool {
        let replicas = self.cluster.replicas();
        self.candidates(unit)
            .iter()
            .any(|&n| !exclude.contains(&n) && replicas.is_up(n))
    }

    /// Whether another candidate could answer for some of the target's units.
    fn has_alternative(&self, target: &Target) -> bool {
        let mut exclude = self.failed.clone();
        exclude.insert(target.node);
        target.shards.iter().any(|&s| self.others(s, &exclude))
    }

    /// Asks other candidates for the units of attempts that are due a hedge.
    fn hedge(&mut self, in_flight: &mut InFlight<'c>) {
        let now = Instant::now();
        for id in 0..self.attempts.len() {
            let attempt = &mut self.attempts[id];
            if attempt.hedge_at.is_none_or(|at| at > now) {
                continue;
            }
            attempt.hedge_at = None;
            if !attempt.live {
                continue;
            }
            let shards = attempt.shards.clone();
            let mut exclude = self.failed.clone();
            exclude.insert(attempt.node);
            // Units with no other candidate stay with the slow one alone.
            let hedgeable: Vec<u32> = shards
                .into_iter()
                .filter(|&s| self.others(s, &exclude))
                .collect();
            if !hedgeable.is_empty() {
                let _ = self.launch(in_flight, &hedgeable, &exclude, true);
            }
        }
    }

    /// Takes one attempt's outcome.
    fn settle(
        &mut self,
        id: usize,
        outcome: Result<Result<NodeResponse, NodeError>, Aborted>,
    ) -> Result<(), ReadError> {
        if !self.attempts[id].live {
            return Ok(()); // cancelled: another answer made it useless
        }
        self.retire(id);
        let Ok(result) = outcome else { return Ok(()) };
        let node = self.attempts[id].node;
        let name = &self.cluster.topology.nodes[node].id;
        match result {
            Ok(resp) => match (self.spread.judge)(resp.status) {
                Verdict::Take => {
                    self.take(id, resp);
                    Ok(())
                }
                Verdict::Stop => Err(ReadError::Stopped(node, Box::new(resp))),
                Verdict::Retry => {
                    self.reasons
                        .push(format!("`{name}` answered {}", resp.status));
                    self.failed.insert(node);
                    Ok(())
                }
            },
            Err(e) => {
                self.reasons.push(format!("`{name}`: {e}"));
                self.last = Some(e);
                self.failed.insert(node);
                Ok(())
            }
        }
    }

    /// Records an answer and cancels the attempts it makes useless.
    fn take(&mut self, id: usize, resp: NodeResponse) {
        let shards = &self.attempts[id].shards;
        if shards.iter().any(|&s| self.answered[s as usize]) {
            return; // overlaps an answer already taken
        }
        for &s in shards {
            self.answered[s as usize] = true;
        }
        if self.attempts[id].hedge {
            self.cluster.metrics.hedge_wins.inc();
        }
        self.answers.push((self.attempts[id].node, resp));
        for other in 0..self.attempts.len() {
            let a = &self.attempts[other];
            if a.live && a.shards.iter().any(|&s| self.answered[s as usize]) {
                a.abort.abort();
                // At least this slow: without it, a slow node cancelled each time would keep
                // its fast record and keep being chosen first.
                let node = &self.cluster.topology.nodes[a.node];
                let waited = a.started.elapsed().as_secs_f64();
                self.cluster.health.observe_latency(node, waited);
                self.retire(other);
            }
        }
    }

    fn retire(&mut self, id: usize) {
        let attempt = &mut self.attempts[id];
        if attempt.live {
            attempt.live = false;
            attempt.hedge_at = None;
            for &s in &attempt.shards {
                self.covering[s as usize] -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests;
