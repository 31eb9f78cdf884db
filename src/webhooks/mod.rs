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
use crate::tasks::{Finished, StoreError, TaskService};
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

    /// Calls every webhook with the tasks that finished since it was made, off the async
    /// threads.
    pub fn notify(self: &Arc<Self>, finished: Vec<Finished>) {
        let webhooks = match self.list() {
            Ok(w) if !w.is_empty() => w,
            Ok(_) => return,
            Err(e) => {
                log::error!("webhooks: {e}");
                return;
            }
        };
        // One payload per set of tasks: usually every webhook gets them all.
        let mut payloads: Vec<(Vec<usize>, Arc<Vec<u8>>)> = Vec::new();
        let mut calls = Vec::new();
        for (uuid, hook) in webhooks {
            let tasks = called_with(&finished, &uuid);
            if tasks.is_empty() {
                continue;
            }
            let body = match payloads.iter().find(|(t, _)| *t == tasks) {
                Some((_, body)) => body.clone(),
                None => match payload(tasks.iter().map(|&i| &finished[i].view)) {
                    Ok(body) => {
                        let body = Arc::new(body);
                        payloads.push((tasks, body.clone()));
                        body
                    }
                    Err(e) => {
                        log::error!("webhooks: {e}");
                        return;
                    }
                },
            };
            calls.push((uuid, hook, body));
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(CALL_TIMEOUT))
                .http_status_as_error(false)
                .build()
                .into();
            for (uuid, hook, body) in calls {
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

/// The tasks (positions in `finished`) webhook `uuid` is called with: those that finished
/// once it existed.
fn called_with(finished: &[Finished], uuid: &Uuid) -> Vec<usize> {
    (0..finished.len())
        .filter(|&i| finished[i].hooks.as_ref().is_none_or(|h| h.contains(uuid)))
        .collect()
}

/// The payload a node sends: the tasks' views as gzipped NDJSON.
fn payload<'v>(views: impl Iterator<Item = &'v Value>) -> std::io::Result<Vec<u8>> {
    let mut ndjson = Vec::new();
    for view in views {
        serde_json::to_writer(&mut ndjson, view)?;
        ndjson.push(b'\n');
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&ndjson)?;
    gz.finish()
}

/// Calls the webhooks with the tasks that finish, gathered while a call is on its way.
pub async fn run(
    webhooks: Arc<Webhooks>,
    mut finished: tokio::sync::mpsc::UnboundedReceiver<Finished>,
) {
    while let Some(first) = finished.recv().await {
        let mut views = vec![first];
        while let Ok(more) = finished.try_recv() {
            views.push(more);
        }
        webhooks.notify(views);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_webhook_is_called_only_with_tasks_that_finished_once_it_existed() {
        let (old, new) = (Uuid::now_v7(), Uuid::now_v7());
        let task = |uid: u64, hooks: Option<Vec<Uuid>>| Finished {
            view: json!({"uid": uid}),
            hooks,
        };
        let finished = [
            task(1, Some(vec![])),
            task(2, Some(vec![old])),
            task(3, Some(vec![old, new])),
            task(4, None),
        ];
        assert_eq!(called_with(&finished, &old), [1, 2, 3]);
        assert_eq!(called_with(&finished, &new), [2, 3]);
        // The payload holds those views, one NDJSON line each.
        let body = payload(
            called_with(&finished, &new)
                .iter()
                .map(|&i| &finished[i].view),
        );
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(&body.unwrap()[..]),
            &mut text,
        )
        .unwrap();
        assert_eq!(text, "{\"uid\":3}\n{\"uid\":4}\n");
    }
}
