//! Background health checks of the nodes (`GET /health`, by pingora-load-balancing), kept off
//! the request path: requests only read the last verdict.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use pingora::lb::discovery::ServiceDiscovery;
use pingora::lb::health_check::{HealthObserve, HttpHealthCheck};
use pingora::lb::{Backend, Backends};
use pingora::protocols::l4::socket::SocketAddr as PingoraAddr;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::Notify;

use crate::config::HealthSettings;
use crate::metrics::Metrics;
use crate::topology::{Node, TopologyStore};

/// The health verdict of every node in the current topology.
pub struct NodeHealth {
    backends: Backends,
    store: Arc<TopologyStore>,
    metrics: Arc<Metrics>,
    settings: HealthSettings,
    /// Wakes the checker early, e.g. right after a topology reload.
    wake: Notify,
    /// Recent response times of each node, by address.
    latency: std::sync::Mutex<ahash::AHashMap<std::net::SocketAddr, Latency>>,
    /// Nodes with missed writes still to replay (their copies are behind), by id.
    lagging: std::sync::Mutex<BTreeSet<String>>,
    /// Addresses found down by the last pass: what every request reads, one atomic load
    /// instead of pingora's set lookup and hashing per node.
    down: arc_swap::ArcSwap<Vec<std::net::SocketAddr>>,
}

/// Samples kept per node for the p95.
const WINDOW: usize = 64;

/// One node's recent response times: a moving average to rank replicas, the last samples for
/// the hedging delay.
struct Latency {
    ewma: f64,
    recent: [f64; WINDOW],
    next: usize,
    filled: usize,
}

impl Latency {
    fn new(seconds: f64) -> Self {
        Latency {
            ewma: seconds,
            recent: [0.0; WINDOW],
            next: 0,
            filled: 0,
        }
    }

    /// Weight 0.2 to the newest sample in the average.
    fn observe(&mut self, seconds: f64) {
        self.ewma = 0.8 * self.ewma + 0.2 * seconds;
        self.recent[self.next] = seconds;
        self.next = (self.next + 1) % WINDOW;
        self.filled = (self.filled + 1).min(WINDOW);
    }

    /// The 95th percentile of the last samples, once there are enough to mean something.
    fn p95(&self) -> Option<f64> {
        if self.filled < 16 {
            return None;
        }
        let mut samples = self.recent;
        let samples = &mut samples[..self.filled];
        let rank = (samples.len() * 95).div_ceil(100) - 1;
        let (_, p95, _) = samples.select_nth_unstable_by(rank, f64::total_cmp);
        Some(*p95)
    }
}

fn backend_of(node: &Node) -> Backend {
    Backend {
        addr: PingoraAddr::Inet(node.addr),
        weight: 1,
        ext: Default::default(),
    }
}

/// Feeds pingora's backend set from the topology in use.
struct TopologyDiscovery {
    store: Arc<TopologyStore>,
}

#[async_trait]
impl ServiceDiscovery for TopologyDiscovery {
    async fn discover(&self) -> pingora::Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        let topology = self.store.snapshot();
        Ok((
            topology.nodes.iter().map(backend_of).collect(),
            HashMap::new(),
        ))
    }
}

/// Logs every change of a node's verdict.
struct LogChanges {
    store: Arc<TopologyStore>,
}

#[async_trait]
impl HealthObserve for LogChanges {
    async fn observe(&self, target: &Backend, healthy: bool) {
        let topology = self.store.snapshot();
        let name = topology
            .nodes
            .iter()
            .find(|n| PingoraAddr::Inet(n.addr) == target.addr)
            .map_or_else(
                || target.addr.to_string(),
                |n| format!("{} ({})", n.id, n.url),
            );
        if healthy {
            log::info!("node {name} is up");
        } else {
            log::warn!("node {name} is down: it fails its health checks");
        }
    }
}

impl NodeHealth {
    pub fn new(store: Arc<TopologyStore>, settings: HealthSettings, metrics: Arc<Metrics>) -> Self {
        let mut backends = Backends::new(Box::new(TopologyDiscovery {
            store: store.clone(),
        }));
        let mut check = HttpHealthCheck::new("localhost", false);
        if let Ok(req) = pingora::http::RequestHeader::build("GET", b"/health", None) {
            check.req = req;
        }
        check.consecutive_failure = settings.failures_before_down;
        check.consecutive_success = settings.successes_before_up;
        check.reuse_connection = true;
        check.peer_template.options.connection_timeout = Some(settings.timeout);
        check.peer_template.options.read_timeout = Some(settings.timeout);
        check.peer_template.options.write_timeout = Some(settings.timeout);
        check.health_changed_callback = Some(Box::new(LogChanges {
            store: store.clone(),
        }));
        backends.set_health_check(Box::new(check));
        NodeHealth {
            backends,
            store,
            metrics,
            settings,
            wake: Notify::new(),
            latency: Default::default(),
            lagging: Default::default(),
            down: Default::default(),
        }
    }

    /// Records how long `node` took to answer.
    pub fn observe_latency(&self, node: &Node, seconds: f64) {
        let mut map = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(node.addr)
            .or_insert_with(|| Latency::new(seconds))
            .observe(seconds);
    }

    /// The node's recent response time, a moving average (0 when unknown, so new nodes get
    /// tried).
    pub fn latency(&self, node: &Node) -> f64 {
        let map = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&node.addr).map_or(0.0, |l| l.ewma)
    }

    /// The 95th percentile of the node's last response times, when known.
    pub fn latency_p95(&self, node: &Node) -> Option<f64> {
        let map = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&node.addr).and_then(Latency::p95)
    }

    /// Whether `node` passes its health checks. A node not checked yet (just added) counts as
    /// up, as in pingora, until its first check says otherwise.
    pub fn is_up(&self, node: &Node) -> bool {
        !self.down.load().contains(&node.addr)
    }

    /// pingora's verdict on `node` now.
    fn checked_up(&self, node: &Node) -> bool {
        let backend = backend_of(node);
        // Membership first: a reload publishing a new backend set between the two reads then
        // errs towards "up" (a node not known yet), never towards "down".
        !self.backends.get_backend().contains(&backend) || self.backends.ready(&backend)
    }

    /// Records which nodes have writes to catch up on.
    pub fn set_lagging(&self, nodes: BTreeSet<String>) {
        *self.lagging.lock().unwrap_or_else(|p| p.into_inner()) = nodes;
    }

    /// Whether `node`'s copy is behind: reads go to its replicas when they can.
    pub fn is_lagging(&self, node: &Node) -> bool {
        self.lagging
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&node.id)
    }

    /// Asks for a check pass now (after a reload) rather than at the next interval.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// One pass: pick up topology changes, check every node, publish the gauges.
    pub async fn check_once(&self) {
        if let Err(e) = self.backends.update(|_| {}).await {
            log::error!("health checks: cannot list nodes: {e}");
        }
        self.backends.run_health_check(true).await;
        let topology = self.store.snapshot();
        self.metrics.node_up.reset();
        let mut down = Vec::new();
        for node in &topology.nodes {
            let up = self.checked_up(node);
            if !up {
                down.push(node.addr);
            }
            self.metrics
                .node_up
                .with_label_values(&[node.id.as_str()])
                .set(i64::from(up));
        }
        self.down.store(Arc::new(down));
    }
}

/// Runs [`NodeHealth::check_once`] every interval until shutdown.
pub struct HealthService {
    pub health: Arc<NodeHealth>,
}

#[async_trait]
impl BackgroundService for HealthService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            self.health.check_once().await;
            tokio::select! {
                _ = tokio::time::sleep(self.health.settings.interval) => {}
                _ = self.health.wake.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p95_of_the_last_samples() {
        let mut l = Latency::new(0.010);
        for _ in 0..15 {
            l.observe(0.010);
        }
        assert_eq!(l.p95(), None, "too few samples");
        // 100 samples 1..=100 ms: only the last 64 (37..=100) count; their p95 is the 61st.
        for ms in 1..=100 {
            l.observe(ms as f64 / 1000.0);
        }
        assert_eq!(l.p95(), Some(0.097));
        assert!(
            l.ewma > 0.090,
            "the average follows the newest samples: {}",
            l.ewma
        );
    }
}
