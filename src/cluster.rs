//! The nodes of one topology snapshot, as the gateway's own operations reach them: one node,
//! any healthy node, or many nodes concurrently.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::join_all;
use futures::stream::{FuturesUnordered, StreamExt};
use http::HeaderValue;
use tokio::time::Instant;

use crate::config::{Config, Hedging};
use crate::health::NodeHealth;
use crate::metrics::Metrics;
use crate::node_client::{NodeClient, NodeError, NodeRequest, NodeResponse};
use crate::topology::{Node, NodeIdx, Topology};

/// How reads that fan out treat slow and failing replicas.
#[derive(Debug, Clone, Copy)]
pub struct ReadPolicy {
    /// Failovers and hedges happen within it; then the read fails.
    pub deadline: Duration,
    pub hedging: Hedging,
}

impl ReadPolicy {
    /// The configuration's defaults.
    pub const DEFAULT: ReadPolicy = ReadPolicy {
        deadline: Duration::from_secs(30),
        hedging: Hedging {
            enabled: true,
            delay: None,
            min_delay: Duration::from_millis(20),
        },
    };

    pub fn from_config(config: &Config) -> Self {
        ReadPolicy {
            deadline: config.timeouts.request,
            hedging: config.hedging,
        }
    }

    /// How long `node` gets before a second replica is asked: the fixed delay, or its recent
    /// p95 response time (at least the minimum; 100 ms until it is known).
    pub fn hedge_delay(&self, health: &NodeHealth, node: &Node) -> Option<Duration> {
        let h = &self.hedging;
        if !h.enabled {
            return None;
        }
        Some(h.delay.unwrap_or_else(|| {
            let p95 = health
                .latency_p95(node)
                .map_or(Duration::from_millis(100), Duration::from_secs_f64);
            p95.max(h.min_delay)
        }))
    }
}

/// One request's view of the fleet.
pub struct Cluster<'a> {
    pub topology: &'a Topology,
    pub client: &'a NodeClient,
    pub health: &'a NodeHealth,
    /// `Bearer <master key>`, for the gateway's own calls (task polling, validation).
    pub master: Option<&'a HeaderValue>,
    pub metrics: &'a Metrics,
    pub reads: &'a ReadPolicy,
    /// Requests sent so far, for the fan-out width of the access log and metrics.
    pub sent: AtomicUsize,
}

impl<'a> Cluster<'a> {
    pub fn new(
        topology: &'a Topology,
        client: &'a NodeClient,
        health: &'a NodeHealth,
        master: Option<&'a HeaderValue>,
        metrics: &'a Metrics,
    ) -> Self {
        Cluster {
            topology,
            client,
            health,
            master,
            metrics,
            reads: &ReadPolicy::DEFAULT,
            sent: AtomicUsize::new(0),
        }
    }

    pub fn with_reads(self, reads: &'a ReadPolicy) -> Self {
        Cluster { reads, ..self }
    }

    pub async fn send(&self, node: NodeIdx, req: &NodeRequest) -> Result<NodeResponse, NodeError> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        let id = self.topology.nodes[node].id.as_str();
        let started = std::time::Instant::now();
        let result = self.client.send(&self.topology.nodes[node], req).await;
        if result.is_ok() {
            self.health
                .observe_latency(&self.topology.nodes[node], started.elapsed().as_secs_f64());
        }
        let outcome = match &result {
            Ok(resp) if resp.status >= 500 => "error",
            Ok(_) => "ok",
            Err(NodeError::Timeout) => "timeout",
            Err(NodeError::Busy) => "busy",
            Err(_) => "unreachable",
        };
        self.metrics
            .node_requests
            .with_label_values(&[id, outcome])
            .inc();
        result
    }

    /// Sends every request at once and waits for all answers.
    pub async fn send_each(
        &self,
        requests: Vec<(NodeIdx, NodeRequest)>,
    ) -> Vec<(NodeIdx, Result<NodeResponse, NodeError>)> {
        join_all(requests.into_iter().map(|(node, req)| async move {
            let result = self.send(node, &req).await;
            (node, result)
        }))
        .await
    }

    /// How loaded `node` looks: its recent response time scaled by the requests it has in
    /// flight (as adaptive replica selection does), lower is better.
    pub fn load(&self, node: NodeIdx) -> f64 {
        let node = &self.topology.nodes[node];
        self.health.latency(node) * (1 + self.client.in_flight(node)) as f64
    }

    /// Healthy nodes first, caught-up (not replaying missed writes) and least loaded ones
    /// first among them, then the others (a down verdict may be stale).
    pub fn preferred_nodes(&self) -> Vec<NodeIdx> {
        let nodes = &self.topology.nodes;
        let mut order: Vec<NodeIdx> = (0..nodes.len()).collect();
        order.sort_by(|&a, &b| {
            let rank = |n: NodeIdx| {
                let node = &nodes[n];
                (
                    !self.health.is_up(node),
                    self.health.is_lagging(node),
                    self.load(n),
                )
            };
            rank(a)
                .partial_cmp(&rank(b))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        order
    }

    /// The first node that answers, in [`Self::preferred_nodes`] order: one that fails gives
    /// way to the next, one slower than its hedge delay gets the next asked as well, and the
    /// first answer wins. For reads and validation probes only (two nodes may get it).
    pub async fn send_any(&self, req: &NodeRequest) -> Result<(NodeIdx, NodeResponse), NodeError> {
        let mut order = self.preferred_nodes().into_iter();
        let mut in_flight = FuturesUnordered::new();
        let mut hedge_at: Option<Instant> = None;
        let mut hedges = Vec::new();
        let mut last = NodeError::Connect("no node in the topology".into());
        let launch = |node: NodeIdx| async move { (node, self.send(node, req).await) };
        let delay = |node: NodeIdx| {
            self.reads
                .hedge_delay(self.health, &self.topology.nodes[node])
                .map(|d| Instant::now() + d)
        };
        loop {
            if in_flight.is_empty() {
                let Some(node) = order.next() else { break };
                in_flight.push(launch(node));
                hedge_at = delay(node);
            }
            tokio::select! {
                Some((node, result)) = in_flight.next() => match result {
                    Ok(resp) => {
                        if hedges.contains(&node) {
                            self.metrics.hedge_wins.inc();
                        }
                        return Ok((node, resp));
                    }
                    Err(e) => last = e,
                },
                _ = tokio::time::sleep_until(hedge_at.unwrap_or_else(Instant::now)),
                    if hedge_at.is_some() => {
                    hedge_at = None;
                    if let Some(node) = order.next() {
                        self.metrics.hedges.inc();
                        hedges.push(node);
                        in_flight.push(launch(node));
                        hedge_at = delay(node);
                    }
                }
            }
        }
        Err(last)
    }

    /// A request carrying the gateway's own key.
    pub fn own_request(&self, req: NodeRequest) -> NodeRequest {
        match self.master {
            Some(key) => req.header(http::header::AUTHORIZATION, key.clone()),
            None => req,
        }
    }
}
