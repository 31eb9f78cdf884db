//! The nodes of one topology snapshot, as the gateway's own operations reach them: one node,
//! any healthy node, or many nodes concurrently; and the policy for slow and failing reads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::join_all;
use http::HeaderValue;

use crate::attempts::{self, ReadError, Spread, Target, Verdict};
use crate::config::{Config, Hedging};
use crate::health::NodeHealth;
use crate::metrics::Metrics;
use crate::replicas::Replicas;
use crate::topology::{Node, NodeIdx, Topology};
use crate::transport::{NodeError, NodeRequest, NodeResponse, Transport};

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

/// One request's view of the fleet: the nodes of one topology snapshot and how to reach them
/// (made by [`crate::fleet::Fleet::cluster`]).
pub struct Cluster<'a> {
    pub topology: &'a Topology,
    pub transport: &'a dyn Transport,
    pub health: &'a NodeHealth,
    /// `Bearer <master key>`, for the gateway's own calls (task polling, validation).
    pub master: Option<&'a HeaderValue>,
    pub metrics: &'a Metrics,
    pub reads: &'a ReadPolicy,
    /// The largest payload a node takes.
    pub node_payload_bytes: usize,
    /// Requests sent so far, for the fan-out width of the access log and metrics.
    pub sent: AtomicUsize,
}

impl<'a> Cluster<'a> {
    /// The replica ranking over this snapshot.
    pub fn replicas(&self) -> Replicas<'a> {
        Replicas {
            topology: self.topology,
            health: self.health,
            transport: self.transport,
        }
    }

    pub async fn send(&self, node: NodeIdx, req: &NodeRequest) -> Result<NodeResponse, NodeError> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        let id = self.topology.nodes[node].id.as_str();
        let started = std::time::Instant::now();
        let result = self.transport.send(&self.topology.nodes[node], req).await;
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

    /// Every node, best first by the [`Replicas`] ranking (down ones last: a down verdict
    /// may be stale).
    pub fn preferred_nodes(&self) -> Vec<NodeIdx> {
        self.replicas()
            .order(self.topology.serving_nodes().iter().copied())
    }

    /// The first node that answers, whatever its status, in [`Self::preferred_nodes`] order:
    /// a one-unit read of [`attempts`] (one that fails gives way to the next, one slower than
    /// its hedge delay gets the next asked as well). For reads and validation probes only
    /// (two nodes may get it).
    pub async fn send_any(&self, req: &NodeRequest) -> Result<(NodeIdx, NodeResponse), NodeError> {
        let failovers = self.topology.nodes.len();
        match self.read_one(req, failovers, |_| Verdict::Take).await {
            Ok(answer) => Ok(answer),
            Err(ReadError::Stopped(node, resp)) => Ok((node, *resp)),
            Err(ReadError::Unavailable { last, .. }) => {
                Err(last.unwrap_or_else(|| NodeError::Connect("no node in the topology".into())))
            }
        }
    }

    /// `req` as a one-unit read of [`attempts`]: to one node in [`Self::preferred_nodes`]
    /// order, its answer judged by `judge`, at most `max_failovers` other nodes after it.
    pub async fn read_one(
        &self,
        req: &NodeRequest,
        max_failovers: usize,
        judge: fn(u16) -> Verdict,
    ) -> Result<(NodeIdx, NodeResponse), ReadError> {
        let request = |_: &Target| req.clone();
        let spread = Spread {
            units: 1,
            by_shard: false,
            max_failovers,
            request: &request,
            judge,
        };
        let mut answers = attempts::run(self, &spread).await?;
        answers.pop().ok_or_else(|| ReadError::Unavailable {
            units: vec![0],
            reasons: vec!["no node answered".into()],
            last: None,
        })
    }

    /// A request carrying the gateway's own key.
    pub fn own_request(&self, req: NodeRequest) -> NodeRequest {
        match self.master {
            Some(key) => req.header(http::header::AUTHORIZATION, key.clone()),
            None => req,
        }
    }
}
