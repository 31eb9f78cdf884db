//! The background task refresher: asks the nodes about tasks still in progress, so their
//! views (and `GET /tasks` filters on status) stay current without a client asking.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::HeaderValue;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::cluster::Cluster;
use crate::health::NodeHealth;
use crate::node_client::NodeClient;
use crate::ops::Services;
use crate::topology::TopologyStore;

/// How often tasks in progress are polled.
const PERIOD: Duration = Duration::from_millis(500);

pub struct TaskRefreshService {
    pub store: Arc<TopologyStore>,
    pub health: Arc<NodeHealth>,
    pub client: Arc<NodeClient>,
    pub services: Arc<Services>,
    pub master: Option<HeaderValue>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

#[async_trait]
impl BackgroundService for TaskRefreshService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            let topology = self.store.snapshot();
            let cluster = Cluster::new(
                &topology,
                &self.client,
                &self.health,
                self.master.as_ref(),
                &self.metrics,
            );
            let tasks = &self.services.tasks;
            tokio::join!(
                tasks.refresh_pending(&cluster),
                tasks.replay_hints(&cluster)
            );
            self.health.set_lagging(tasks.lagging_nodes());
            self.metrics.task_store_tasks.set(tasks.count() as i64);
            let hints = tasks.hint_counts();
            for node in &topology.nodes {
                let n = hints.get(&node.id).copied().unwrap_or(0);
                self.metrics
                    .hints_pending
                    .with_label_values(&[node.id.as_str()])
                    .set(n as i64);
            }
            tokio::select! {
                _ = tokio::time::sleep(PERIOD) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
