//! The gateway's shared state about its nodes, built once at start and passed explicitly to
//! the proxy, the background services and every operation: the topology, the nodes' health,
//! the transport to them, the gateway's own key, the metrics and the read policy.

use std::sync::Arc;

use http::HeaderValue;

use crate::cluster::{Cluster, ReadPolicy};
use crate::health::NodeHealth;
use crate::metrics::Metrics;
use crate::rebalance::gate::WriteGate;
use crate::topology::{Topology, TopologyStore};
use crate::transport::Transport;

/// Everything a request or a background job needs to reach the nodes.
pub struct Fleet {
    pub topology: Arc<TopologyStore>,
    pub health: Arc<NodeHealth>,
    pub transport: Arc<dyn Transport>,
    /// `Bearer <master key>`, for the gateway's own calls (task polling, validation).
    pub master: Option<HeaderValue>,
    pub metrics: Arc<Metrics>,
    pub reads: ReadPolicy,
    /// The largest payload a node takes.
    pub node_payload_bytes: usize,
    /// Held open by client writes; closed by a moving shard's barrier.
    pub writes: WriteGate,
}

impl Fleet {
    /// The nodes of one topology snapshot, as one request (or one round of a background
    /// job) reaches them.
    pub fn cluster<'a>(&'a self, topology: &'a Topology) -> Cluster<'a> {
        Cluster {
            topology,
            transport: self.transport.as_ref(),
            health: &self.health,
            master: self.master.as_ref(),
            metrics: &self.metrics,
            reads: &self.reads,
            node_payload_bytes: self.node_payload_bytes,
            sent: Default::default(),
        }
    }
}
