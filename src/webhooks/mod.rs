//! Webhooks belong to the gateway: a node's own would be called once per node, with the
//! node's task uids. They are kept in the gateway's store, managed through Meilisearch's
//! `/webhooks` API ([`crate::ops`]), and called when a gateway task finishes, with the
//! payload a node sends: the finished tasks' views as gzipped NDJSON.

pub mod model;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use prometheus::IntCounterVec;
use serde_json::Value;
use uuid::Uuid;

use crate::metrics::Metrics;
use crate::tasks::{StoreError, TaskService};
use model::Webhook;

/// How long one call may take, as on a node.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Webhooks {
    tasks: Arc<TaskService>,
    /// Writes read, change and store the whole list: one at a time.
    lock: tokio::sync::Mutex<()>,
    calls: IntCounterVec,
}

impl Webhooks {
    pub fn new(tasks: Arc<TaskService>, metrics: &Metrics) -> Webhooks {
        let calls = IntCounterVec::new(
            prometheus::Opts::new(
                "miroir_webhook_calls_total",
                "Webhook calls made when gateway tasks finish, by outcome",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        metrics.register(Box::new(calls.clone()));
        Webhooks {
            tasks,
            lock: Default::default(),
            calls,
        }
    }

    /// Held by a webhook write from reading the list to storing it.
    pub async fn hold(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.lock.lock().await
    }

    /// Every webhook, in uuid order.
    pub fn list(&self) -> Result<Vec<(Uuid, Webhook)>, StoreError> {
        Ok(self
            .tasks
            .webhooks()?
            .into_iter()
            .filter_map(|(uuid, json)| {
                Some((uuid.parse().ok()?, serde_json::from_slice(&json).ok()?))
            })
            .collect())
    }

    pub fn store(&self, uuid: Uuid, webhook: Option<&Webhook>) -> Result<(), StoreError> {
        let json = webhook.map(|w| serde_json::to_vec(w).unwrap_or_default());
        self.tasks.set_webhook(&uuid.to_string(), json.as_deref())
    }

    /// Calls every webhook with `views` (tasks that finished), off the async threads.
    pub fn notify(self: &Arc<Self>, views: Vec<Value>) {
        let webhooks = match self.list() {
            Ok(w) if !w.is_empty() => w,
            Ok(_) => return,
            Err(e) => {
                log::error!("webhooks: {e}");
                return;
            }
        };
        let mut ndjson = Vec::new();
        for view in &views {
            let _ = serde_json::to_writer(&mut ndjson, view);
            ndjson.push(b'\n');
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let body = match gz.write_all(&ndjson).and_then(|_| gz.finish()) {
            Ok(b) => b,
            Err(e) => {
                log::error!("webhooks: {e}");
                return;
            }
        };
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(CALL_TIMEOUT))
                .http_status_as_error(false)
                .build()
                .into();
            for (uuid, hook) in webhooks {
                let mut request = agent
                    .post(&hook.url)
                    .header("Content-Encoding", "gzip")
                    .header("Content-Type", "application/x-ndjson");
                for (name, value) in &hook.headers {
                    request = request.header(name, value);
                }
                let outcome = match request.send(&body[..]) {
                    Ok(resp) if resp.status().is_success() => "ok",
                    Ok(resp) => {
                        log::warn!("webhook {uuid}: {} answered {}", hook.url, resp.status());
                        "refused"
                    }
                    Err(e) => {
                        log::warn!("webhook {uuid}: {}: {e}", hook.url);
                        "failed"
                    }
                };
                this.calls.with_label_values(&[outcome]).inc();
            }
        });
    }
}

/// Calls the webhooks with the tasks that finish, gathered while a call is on its way.
pub async fn run(
    webhooks: Arc<Webhooks>,
    mut finished: tokio::sync::mpsc::UnboundedReceiver<Value>,
) {
    while let Some(first) = finished.recv().await {
        let mut views = vec![first];
        while let Ok(more) = finished.try_recv() {
            views.push(more);
        }
        webhooks.notify(views);
    }
}
