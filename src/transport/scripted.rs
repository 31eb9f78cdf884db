//! A [`Transport`] that plays a script instead of the network, for deterministic in-process
//! tests of the read engine, failover, hedging, quorum and handoff (run them on a paused
//! tokio clock: delays cost no real time). [`TestFleet`] wraps it in a whole [`Fleet`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{NodeError, NodeRequest, NodeResponse, Transport};
use crate::cluster::ReadPolicy;
use crate::config::{ClusterSpec, HealthSettings, Hedging, NodeSpec};
use crate::fleet::Fleet;
use crate::health::NodeHealth;
use crate::metrics::Metrics;
use crate::topology::{Node, Topology, TopologyStore};

/// An answer computed from the request: status and body.
pub type Responder = Arc<dyn Fn(&NodeRequest) -> (u16, String) + Send + Sync>;

/// What a node does with one request: after `delay`, answer or fail.
#[derive(Clone)]
pub enum Step {
    /// Answers `status`; the body is the request's own (an echo) unless one is given.
    Answer {
        status: u16,
        body: Option<Bytes>,
        delay: Duration,
    },
    Fail {
        error: NodeError,
        delay: Duration,
    },
    /// Answers what the function says of the request, at once.
    Reply(Responder),
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Answer { status, delay, .. } => write!(f, "Answer({status} after {delay:?})"),
            Step::Fail { error, delay } => write!(f, "Fail({error} after {delay:?})"),
            Step::Reply(_) => write!(f, "Reply(..)"),
        }
    }
}

impl Step {
    /// Echoes the request body with status 200 after `ms` milliseconds.
    pub fn ok_after(ms: u64) -> Step {
        Step::Answer {
            status: 200,
            body: None,
            delay: Duration::from_millis(ms),
        }
    }

    /// Answers `status` with `body` at once.
    pub fn status(status: u16, body: &str) -> Step {
        Step::Answer {
            status,
            body: Some(Bytes::copy_from_slice(body.as_bytes())),
            delay: Duration::ZERO,
        }
    }

    /// Refuses the connection at once.
    pub fn refuse() -> Step {
        Step::Fail {
            error: NodeError::Connect("connection refused".into()),
            delay: Duration::ZERO,
        }
    }
}

#[derive(Default)]
struct Script {
    /// Steps played once each, in order.
    next: VecDeque<Step>,
    /// Played when `next` is empty (default: an immediate echo).
    then: Option<Step>,
}

/// One request a node received.
#[derive(Debug, Clone)]
pub struct Received {
    pub node: String,
    pub request: NodeRequest,
}

/// Scripted nodes, by node id.
#[derive(Default)]
pub struct Scripted {
    scripts: Mutex<HashMap<String, Script>>,
    received: Mutex<Vec<Received>>,
    in_flight: Mutex<HashMap<String, usize>>,
}

impl Scripted {
    /// `node` plays `steps` once each, then `then` for ever.
    pub fn script(&self, node: &str, steps: Vec<Step>, then: Step) {
        let mut scripts = self.scripts.lock().unwrap();
        scripts.insert(
            node.to_string(),
            Script {
                next: steps.into(),
                then: Some(then),
            },
        );
    }

    /// Every request received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Ids of the nodes that received requests, in arrival order.
    pub fn asked(&self) -> Vec<String> {
        self.received().into_iter().map(|r| r.node).collect()
    }

    fn step(&self, node: &str) -> Step {
        let mut scripts = self.scripts.lock().unwrap();
        let script = scripts.entry(node.to_string()).or_default();
        script
            .next
            .pop_front()
            .or_else(|| script.then.clone())
            .unwrap_or_else(|| Step::ok_after(0))
    }

    fn count(&self, node: &str, delta: isize) {
        let mut map = self.in_flight.lock().unwrap();
        let n = map.entry(node.to_string()).or_default();
        *n = n.saturating_add_signed(delta);
    }
}

/// Decrements a node's in-flight count even when the request is cancelled mid-delay.
struct InFlight<'a>(&'a Scripted, String);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.count(&self.1, -1);
    }
}

#[async_trait]
impl Transport for Scripted {
    async fn send(&self, node: &Node, req: &NodeRequest) -> Result<NodeResponse, NodeError> {
        self.received.lock().unwrap().push(Received {
            node: node.id.clone(),
            request: req.clone(),
        });
        let step = self.step(&node.id);
        self.count(&node.id, 1);
        let _guard = InFlight(self, node.id.clone());
        match step {
            Step::Answer {
                status,
                body,
                delay,
            } => {
                tokio::time::sleep(delay).await;
                Ok(NodeResponse {
                    status,
                    headers: http::HeaderMap::new(),
                    body: body.unwrap_or_else(|| req.body.clone()),
                })
            }
            Step::Fail { error, delay } => {
                tokio::time::sleep(delay).await;
                Err(error)
            }
            Step::Reply(respond) => {
                let (status, body) = respond(req);
                Ok(NodeResponse {
                    status,
                    headers: http::HeaderMap::new(),
                    body: Bytes::from(body),
                })
            }
        }
    }

    fn in_flight(&self, node: &Node) -> usize {
        let map = self.in_flight.lock().unwrap();
        map.get(&node.id).copied().unwrap_or(0)
    }
}

/// A whole [`Fleet`] over scripted nodes: groups of nodes named `<group><n>` (`a0`, `a1`,
/// `b0` ...), `shards` shards, replication factor 1, hedging after a fixed delay.
pub struct TestFleet {
    pub fleet: Fleet,
    pub nodes: Arc<Scripted>,
}

impl TestFleet {
    pub fn new(groups: &[&str], per_group: usize, shards: u32, hedge_ms: Option<u64>) -> Self {
        let mut specs = Vec::new();
        for group in groups {
            for i in 0..per_group {
                let port = 7100 + specs.len() as u16;
                specs.push(NodeSpec {
                    id: format!("{group}{i}"),
                    url: format!("http://127.0.0.1:{port}"),
                    authority: format!("127.0.0.1:{port}"),
                    addr: ([127, 0, 0, 1], port).into(),
                    group: group.to_string(),
                    weight: 1,
                });
            }
        }
        let spec = ClusterSpec {
            shards,
            replication_factor: 1,
        };
        let topology = Arc::new(TopologyStore::new(Topology::new(&spec, &specs, 1)));
        let second = Duration::from_secs(1);
        let settings = HealthSettings {
            interval: second,
            timeout: second,
            failures_before_down: 1,
            successes_before_up: 1,
        };
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(NodeHealth::new(topology.clone(), settings, metrics.clone()));
        let nodes = Arc::new(Scripted::default());
        let reads = ReadPolicy {
            deadline: Duration::from_secs(30),
            hedging: Hedging {
                enabled: hedge_ms.is_some(),
                delay: hedge_ms.map(Duration::from_millis),
                min_delay: Duration::from_millis(20),
            },
        };
        let fleet = Fleet {
            topology,
            health,
            transport: nodes.clone(),
            master: None,
            metrics,
            reads,
            node_payload_bytes: 100_000_000,
            writes: Default::default(),
        };
        TestFleet { fleet, nodes }
    }
}
