//! One read over the fleet: one owner per shard answers, exactly once. A replica that fails
//! (unreachable, timeout, 5xx, `503 too_many_search_requests`) hands its shards to other
//! owners; one slow to answer gets a second replica asked (a hedge) and the first complete
//! answer wins, the other request being cancelled; all within the read's deadline.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use futures::future::{AbortHandle, Abortable, Aborted};
use futures::stream::{FuturesUnordered, StreamExt};
use http::{HeaderValue, Method};
use tokio::time::Instant;

use super::placement::{choose_for, Target};
use super::{relay, Request};
use crate::cluster::Cluster;
use crate::error::{ErrorType, MeiliError};
use crate::node_client::{NodeError, NodeResponse};
use crate::respond::Reply;
use crate::topology::NodeIdx;

/// Attempts at a shard after the first, on other replicas, before the read fails.
const MAX_FAILOVERS: u8 = 2;

/// Sends one JSON request per chosen owner and returns the answers, which cover every shard
/// exactly once, or the reply to give instead (a node's client error verbatim, or `503
/// miroir_shards_unavailable`).
pub(super) async fn gather(
    cluster: &Cluster<'_>,
    req: &Request<'_>,
    path: &str,
    body_for: &(dyn Fn(&Target) -> Vec<u8> + Sync),
) -> Result<Vec<NodeResponse>, Reply> {
    let deadline = cluster.reads.deadline;
    let mut read = Read::new(cluster, req, path, body_for);
    match tokio::time::timeout(deadline, read.run()).await {
        Ok(result) => result,
        Err(_) => {
            read.reasons.push(format!(
                "no answer within the request deadline of {} ms",
                deadline.as_millis()
            ));
            Err(shards_unavailable(&read.unanswered(), &read.reasons))
        }
    }
}

/// One request to one node for some shards.
struct Attempt {
    node: NodeIdx,
    shards: Vec<u32>,
    /// Whether it is a hedge of a slower attempt.
    hedge: bool,
    started: Instant,
    /// When to hedge it, if it may be.
    hedge_at: Option<Instant>,
    /// In flight and counted as covering its shards.
    live: bool,
    abort: AbortHandle,
}

type Outcome = (usize, Result<Result<NodeResponse, NodeError>, Aborted>);
type InFlight<'f> = FuturesUnordered<Pin<Box<dyn Future<Output = Outcome> + Send + 'f>>>;

struct Read<'c, 'r> {
    cluster: &'c Cluster<'c>,
    req: &'r Request<'r>,
    path: &'r str,
    body_for: &'r (dyn Fn(&Target) -> Vec<u8> + Sync),
    answered: Vec<bool>,
    /// Live attempts covering each shard.
    covering: Vec<u16>,
    tries: Vec<u8>,
    failed: BTreeSet<NodeIdx>,
    attempts: Vec<Attempt>,
    answers: Vec<NodeResponse>,
    reasons: Vec<String>,
}

impl<'c, 'r> Read<'c, 'r> {
    fn new(
        cluster: &'c Cluster<'c>,
        req: &'r Request<'r>,
        path: &'r str,
        body_for: &'r (dyn Fn(&Target) -> Vec<u8> + Sync),
    ) -> Self {
        let shards = cluster.topology.shards as usize;
        Read {
            cluster,
            req,
            path,
            body_for,
            answered: vec![false; shards],
            covering: vec![0; shards],
            tries: vec![0; shards],
            failed: BTreeSet::new(),
            attempts: Vec::new(),
            answers: Vec::new(),
            reasons: Vec::new(),
        }
    }

    fn unanswered(&self) -> Vec<u32> {
        (0..self.answered.len() as u32)
            .filter(|&s| !self.answered[s as usize])
            .collect()
    }

    async fn run(&mut self) -> Result<Vec<NodeResponse>, Reply> {
        let mut in_flight: InFlight<'c> = FuturesUnordered::new();
        loop {
            // Shards no live attempt covers (first round, or their replica failed).
            let uncovered: Vec<u32> = self
                .unanswered()
                .into_iter()
                .filter(|&s| self.covering[s as usize] == 0)
                .collect();
            if !uncovered.is_empty() {
                if uncovered
                    .iter()
                    .any(|&s| self.tries[s as usize] > MAX_FAILOVERS)
                {
                    return Err(shards_unavailable(&uncovered, &self.reasons));
                }
                for &s in &uncovered {
                    self.tries[s as usize] += 1;
                }
                let exclude = self.failed.clone();
                if let Err(orphans) = self.launch(&mut in_flight, &uncovered, &exclude, false) {
                    return Err(shards_unavailable(&orphans, &self.reasons));
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
                // Unreachable: an unanswered shard always has a live attempt.
                else => return Err(shards_unavailable(&self.unanswered(), &self.reasons)),
            }
        }
    }

    /// Sends requests covering `shards`, never to a node in `exclude`.
    fn launch(
        &mut self,
        in_flight: &mut InFlight<'c>,
        shards: &[u32],
        exclude: &BTreeSet<NodeIdx>,
        hedge: bool,
    ) -> Result<(), Vec<u32>> {
        let cluster = self.cluster;
        let ct = HeaderValue::from_static("application/json");
        for target in choose_for(cluster, shards, exclude)? {
            let request = self.req.to_node(
                Method::POST,
                self.path.to_string(),
                Some(&ct),
                Bytes::from((self.body_for)(&target)),
            );
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

    /// Whether another owner could answer for some of the target's shards.
    fn has_alternative(&self, target: &Target) -> bool {
        let topology = self.cluster.topology;
        target.shards.iter().any(|&s| {
            topology.owners(s).iter().any(|&n| {
                n != target.node
                    && !self.failed.contains(&n)
                    && self.cluster.health.is_up(&topology.nodes[n])
            })
        })
    }

    /// Asks other replicas for the shards of attempts that are due a hedge.
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
            // Shards with no other owner stay with the slow one alone.
            let topology = self.cluster.topology;
            let hedgeable: Vec<u32> = shards
                .into_iter()
                .filter(|&s| {
                    topology.owners(s).iter().any(|n| {
                        !exclude.contains(n) && self.cluster.health.is_up(&topology.nodes[*n])
                    })
                })
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
    ) -> Result<(), Reply> {
        if !self.attempts[id].live {
            return Ok(()); // cancelled: another answer made it useless
        }
        self.retire(id);
        let Ok(result) = outcome else { return Ok(()) };
        let node = self.attempts[id].node;
        let name = &self.cluster.topology.nodes[node].id;
        match result {
            Ok(resp) if resp.status == 200 => {
                let shards = &self.attempts[id].shards;
                if shards.iter().any(|&s| self.answered[s as usize]) {
                    return Ok(()); // overlaps an answer already taken
                }
                for &s in shards {
                    self.answered[s as usize] = true;
                }
                if self.attempts[id].hedge {
                    self.cluster.metrics.hedge_wins.inc();
                }
                self.answers.push(resp);
                // Attempts overlapping the answered shards can no longer be used.
                for other in 0..self.attempts.len() {
                    let a = &self.attempts[other];
                    if a.live && a.shards.iter().any(|&s| self.answered[s as usize]) {
                        a.abort.abort();
                        // At least this slow: without it, a slow node cancelled each time
                        // would keep its fast record and keep being chosen first.
                        let node = &self.cluster.topology.nodes[a.node];
                        let waited = a.started.elapsed().as_secs_f64();
                        self.cluster.health.observe_latency(node, waited);
                        self.retire(other);
                    }
                }
                Ok(())
            }
            // A client error is the answer, as any node would give it.
            Ok(resp) if resp.status < 500 => Err(relay(&resp)),
            Ok(resp) => {
                self.reasons
                    .push(format!("`{name}` answered {}", resp.status));
                self.failed.insert(node);
                Ok(())
            }
            Err(e) => {
                self.reasons.push(format!("`{name}`: {e}"));
                self.failed.insert(node);
                Ok(())
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

fn shards_unavailable(shards: &[u32], reasons: &[String]) -> Reply {
    let list: Vec<String> = shards.iter().map(u32::to_string).collect();
    Reply::error(&MeiliError::new(
        503,
        "miroir_shards_unavailable",
        ErrorType::System,
        format!(
            "No replica of shards {} answered ({}); retry once a replica is back.",
            list.join(", "),
            if reasons.is_empty() {
                "every owner fails its health checks".to_string()
            } else {
                reasons.join("; ")
            }
        ),
    ))
}
