//! A bounded task history: past `tasks.max_tasks` stored tasks, the oldest finished ones are
//! deleted, here and on the nodes, and a `taskDeletion` task records it, as Meilisearch
//! prunes its own queue (`cleanup_task_queue`).

use std::collections::HashMap;

use http::Method;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{aggregate, GatewayTask, NodeTaskRef, TaskService};
use crate::cluster::Cluster;
use crate::transport::NodeRequest;

/// Finished tasks deleted per pass, as Meilisearch does.
pub const PRUNE_BATCH: usize = 100_000;

/// Node task uids per request: the list travels in the query string.
const UIDS_PER_REQUEST: usize = 1_000;

/// Tasks deleted from the store per transaction, so writes wait little on a pass.
const DELETES_PER_COMMIT: usize = 10_000;

/// Sends `method path?uids=...` to each node holding some of `tasks`, a page of uids at a
/// time; the node tasks this created.
pub async fn act_on_nodes(
    cluster: &Cluster<'_>,
    tasks: &[GatewayTask],
    method: Method,
    path: &str,
) -> Vec<NodeTaskRef> {
    let mut by_node: HashMap<&str, Vec<u64>> = HashMap::new();
    for t in tasks {
        for r in &t.node_tasks {
            by_node.entry(r.node.as_str()).or_default().push(r.uid);
        }
    }
    let requests: Vec<_> = by_node
        .into_iter()
        .filter_map(|(node, uids)| Some((cluster.topology.node_by_id(node)?, uids)))
        .flat_map(|(idx, uids)| {
            uids.chunks(UIDS_PER_REQUEST)
                .map(|page| {
                    let list: Vec<String> = page.iter().map(u64::to_string).collect();
                    let mut r = NodeRequest::get(format!("{path}?uids={}", list.join(",")));
                    r.method = method.clone();
                    (idx, cluster.own_request(r))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let mut created = Vec::new();
    for (idx, result) in cluster.send_each(requests).await {
        let Ok(resp) = result else { continue };
        let body: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        if let Some(uid) = body["taskUid"].as_u64() {
            created.push(NodeTaskRef {
                node: cluster.topology.nodes[idx].id.clone(),
                uid,
                internal: true,
            });
        }
    }
    created
}

/// The filter Meilisearch's own pruning task shows: finished tasks enqueued up to the last
/// one deleted.
fn original_filter(last: &GatewayTask) -> String {
    let before = OffsetDateTime::parse(&last.enqueued_at, &Rfc3339)
        .map(|t| t + time::Duration::nanoseconds(1))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| last.enqueued_at.clone());
    format!("?beforeEnqueuedAt={before}&statuses=succeeded,failed,canceled")
}

impl TaskService {
    /// Deletes the oldest finished tasks (up to [`PRUNE_BATCH`]) once `max_tasks` are stored;
    /// how many.
    pub async fn prune(&self, cluster: &Cluster<'_>) -> usize {
        let Ok(store) = self.store() else { return 0 };
        if store.len().unwrap_or(0) < self.max_tasks {
            return 0;
        }
        let enqueued_at = aggregate::now_rfc3339();
        let uids = match store.index() {
            Ok(index) => index.oldest_finished(PRUNE_BATCH),
            Err(e) => {
                log::error!("task pruning: {e}");
                return 0;
            }
        };
        // Fewer than two would let the pruning tasks themselves fill the store.
        if uids.len() < 2 {
            log::warn!("the task store is almost full, but no task can be deleted yet");
            return 0;
        }
        let tasks = match store.tasks(&mut uids.iter().copied()) {
            Ok(tasks) => tasks,
            Err(e) => {
                log::error!("task pruning: {e}");
                return 0;
            }
        };
        let node_tasks = act_on_nodes(cluster, &tasks, Method::DELETE, "/tasks").await;
        for page in uids.chunks(DELETES_PER_COMMIT) {
            if let Err(e) = store.delete(page) {
                log::error!("task pruning: {e}");
                return 0;
            }
        }
        let details = json!({
            "matchedTasks": uids.len(),
            "deletedTasks": uids.len(),
            "originalFilter": tasks.last().map(original_filter).unwrap_or_default(),
        });
        let recorded = self.create(|uid| {
            GatewayTask::about_tasks(uid, "taskDeletion", enqueued_at, node_tasks, details)
        });
        if let Err(e) = recorded {
            log::error!("task pruning: {e}");
        }
        log::info!(
            "the task store is almost full: deleted the oldest {} finished tasks",
            uids.len()
        );
        uids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_ends_just_after_the_last_task() {
        let last = crate::state::contract::task(9);
        assert_eq!(
            original_filter(&last),
            "?beforeEnqueuedAt=2026-01-01T00:00:00.000000001Z&statuses=succeeded,failed,canceled"
        );
    }
}
