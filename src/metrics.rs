//! Prometheus metrics: one [`Metrics`] registry per gateway, passed explicitly, rendered as
//! text for the metrics listener (`crate::server`).

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric the gateway exports.
pub struct Metrics {
    registry: Registry,
    /// Client requests by route class, method and status code.
    pub requests: IntCounterVec,
    /// Client request latency by route class.
    pub request_duration: HistogramVec,
    /// Client requests being served now.
    pub in_flight: IntGauge,
    /// 1 when a node passes its health checks, 0 otherwise.
    pub node_up: IntGaugeVec,
    /// Topology reloads by result (`success` or `error`).
    pub reloads: IntCounterVec,
    /// The generation of the topology in use (1 at start, +1 per successful reload).
    pub topology_generation: IntGauge,
    /// Requests the gateway sent to each node, by outcome (`ok`, `error` for a 5xx answer,
    /// `unreachable`, `timeout`).
    pub node_requests: IntCounterVec,
    /// Nodes one client request was sent to.
    pub fanout_width: Histogram,
    /// Time spent merging shard answers.
    pub merge_duration: Histogram,
    /// Documents per client batch.
    pub write_batch_documents: Histogram,
    /// Tasks in the gateway's task store.
    pub task_store_tasks: IntGauge,
    /// Writes a node missed, waiting to be replayed to it, by node.
    pub hints_pending: IntGaugeVec,
    /// Second replicas asked because the first was slow, and those whose answer was used.
    pub hedges: IntCounter,
    pub hedge_wins: IntCounter,
    /// Client connections open now.
    pub client_connections: IntGauge,
    /// Client connections refused because too many were open.
    pub client_connections_refused: IntCounter,
    /// Client connections closed with `408` because their first request head came too slowly.
    pub client_timeouts: IntCounter,
    /// Shard moves by phase (the current rebalance and its recent history).
    pub rebalance_moves: IntGaugeVec,
    /// Documents copied to new owners, by way (`export` node to node, or `gateway`).
    pub rebalance_documents: IntCounterVec,
    /// Recorded writes replayed to new owners.
    pub rebalance_replayed: IntCounter,
    /// Moves from start to end.
    pub rebalance_move_seconds: Histogram,
    /// How long writes were held while a shard changed owner.
    pub rebalance_barrier_seconds: Histogram,
    /// The effective placement's epoch.
    pub placement_epoch: IntGauge,
    /// Other gateways on the shared state whose configuration desires another topology.
    pub state_topology_disagreements: IntGauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "miroir_requests_total",
                "Client requests by route class, method and status.",
            ),
            &["class", "method", "status"],
        )
        .expect("valid metric");
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "miroir_request_duration_seconds",
                "Time from request start to the end of the response, by route class.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["class"],
        )
        .expect("valid metric");
        let in_flight = IntGauge::new("miroir_requests_in_flight", "Client requests being served.")
            .expect("valid metric");
        let node_up = IntGaugeVec::new(
            Opts::new(
                "miroir_node_up",
                "1 when the node passes its health checks.",
            ),
            &["node"],
        )
        .expect("valid metric");
        let reloads = IntCounterVec::new(
            Opts::new(
                "miroir_topology_reloads_total",
                "Topology reloads by result.",
            ),
            &["result"],
        )
        .expect("valid metric");
        let topology_generation = IntGauge::new(
            "miroir_topology_generation",
            "Generation of the topology in use; grows by one per successful reload.",
        )
        .expect("valid metric");
        let node_requests = IntCounterVec::new(
            Opts::new(
                "miroir_node_requests_total",
                "Requests sent to each node, by outcome.",
            ),
            &["node", "outcome"],
        )
        .expect("valid metric");
        let fanout_width = Histogram::with_opts(
            HistogramOpts::new(
                "miroir_fanout_width",
                "Nodes one client request was sent to.",
            )
            .buckets(vec![1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 32.0, 64.0]),
        )
        .expect("valid metric");
        let merge_duration = Histogram::with_opts(
            HistogramOpts::new(
                "miroir_merge_duration_seconds",
                "Time spent merging shard answers.",
            )
            .buckets(vec![
                0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                0.05,
            ]),
        )
        .expect("valid metric");
        let write_batch_documents = Histogram::with_opts(
            HistogramOpts::new(
                "miroir_write_batch_documents",
                "Documents per client batch.",
            )
            .buckets(vec![
                1.0,
                10.0,
                100.0,
                1_000.0,
                10_000.0,
                100_000.0,
                1_000_000.0,
            ]),
        )
        .expect("valid metric");
        let task_store_tasks = IntGauge::new(
            "miroir_task_store_tasks",
            "Tasks in the gateway's task store.",
        )
        .expect("valid metric");
        let hints_pending = IntGaugeVec::new(
            Opts::new(
                "miroir_hints_pending",
                "Writes a node missed, kept to be replayed to it once it is back.",
            ),
            &["node"],
        )
        .expect("valid metric");
        let hedges = IntCounter::new(
            "miroir_hedges_total",
            "Reads sent to a second replica because the first was slow to answer.",
        )
        .expect("valid metric");
        let hedge_wins = IntCounter::new(
            "miroir_hedge_wins_total",
            "Hedged reads whose answer was used (the first replica's was dropped).",
        )
        .expect("valid metric");
        let client_connections =
            IntGauge::new("miroir_client_connections", "Client connections open now.")
                .expect("valid metric");
        let client_connections_refused = IntCounter::new(
            "miroir_client_connections_refused_total",
            "Client connections refused because `clients.max_connections` were open.",
        )
        .expect("valid metric");
        let client_timeouts = IntCounter::new(
            "miroir_client_header_timeouts_total",
            "Client connections answered 408: their first request head came too slowly.",
        )
        .expect("valid metric");
        let rebalance_moves = IntGaugeVec::new(
            Opts::new("miroir_rebalance_moves", "Shard moves by phase."),
            &["phase"],
        )
        .expect("valid metric");
        let rebalance_documents = IntCounterVec::new(
            Opts::new(
                "miroir_rebalance_documents_copied_total",
                "Documents copied to a shard's new owner, by way.",
            ),
            &["via"],
        )
        .expect("valid metric");
        let rebalance_replayed = IntCounter::new(
            "miroir_rebalance_replayed_writes_total",
            "Writes recorded during a move and replayed to the shard's new owner.",
        )
        .expect("valid metric");
        let rebalance_move_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "miroir_rebalance_move_seconds",
                "Duration of a shard move, from its start to its end.",
            )
            .buckets(vec![
                0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
            ]),
        )
        .expect("valid metric");
        let rebalance_barrier_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "miroir_rebalance_barrier_seconds",
                "How long writes were held while a shard changed owner.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
        )
        .expect("valid metric");
        let placement_epoch = IntGauge::new(
            "miroir_placement_epoch",
            "Epoch of the effective placement; grows by one per change of owner.",
        )
        .expect("valid metric");
        let state_topology_disagreements = IntGauge::new(
            "miroir_state_topology_disagreements",
            "Other gateways on the shared state whose configuration desires another topology.",
        )
        .expect("valid metric");
        for c in [
            Box::new(state_topology_disagreements.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(rebalance_moves.clone()),
            Box::new(rebalance_documents.clone()),
            Box::new(rebalance_replayed.clone()),
            Box::new(rebalance_move_seconds.clone()),
            Box::new(rebalance_barrier_seconds.clone()),
            Box::new(placement_epoch.clone()),
            Box::new(node_requests.clone()),
            Box::new(client_connections.clone()),
            Box::new(client_connections_refused.clone()),
            Box::new(client_timeouts.clone()),
            Box::new(hedges.clone()),
            Box::new(hedge_wins.clone()),
            Box::new(hints_pending.clone()),
            Box::new(fanout_width.clone()),
            Box::new(merge_duration.clone()),
            Box::new(write_batch_documents.clone()),
            Box::new(task_store_tasks.clone()),
            Box::new(requests.clone()),
            Box::new(request_duration.clone()),
            Box::new(in_flight.clone()),
            Box::new(node_up.clone()),
            Box::new(reloads.clone()),
            Box::new(topology_generation.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        // Both results appear from the start, so `rate()` works before the first reload.
        reloads.with_label_values(&["success"]);
        reloads.with_label_values(&["error"]);
        Metrics {
            registry,
            requests,
            request_duration,
            in_flight,
            node_up,
            reloads,
            topology_generation,
            node_requests,
            fanout_width,
            merge_duration,
            write_batch_documents,
            task_store_tasks,
            hints_pending,
            hedges,
            hedge_wins,
            client_connections,
            client_connections_refused,
            client_timeouts,
            rebalance_moves,
            rebalance_documents,
            rebalance_replayed,
            rebalance_move_seconds,
            rebalance_barrier_seconds,
            placement_epoch,
            state_topology_disagreements,
        }
    }

    /// Adds a family owned by another module (e.g. the search cache's).
    pub fn register(&self, c: Box<dyn prometheus::core::Collector>) {
        if let Err(e) = self.registry.register(c) {
            log::error!("metric not registered: {e}");
        }
    }

    /// The exposition text.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding the families of a valid registry into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_registered_metrics() {
        let m = Metrics::new();
        m.requests
            .with_label_values(&["one_node", "GET", "200"])
            .inc();
        m.reloads.with_label_values(&["error"]).inc();
        let text = String::from_utf8(m.render()).unwrap();
        assert!(
            text.contains(r#"miroir_requests_total{class="one_node",method="GET",status="200"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"miroir_topology_reloads_total{result="error"} 1"#));
        assert!(text.contains(r#"miroir_topology_reloads_total{result="success"} 0"#));
    }
}
