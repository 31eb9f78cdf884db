//! One set of API keys for the whole fleet (see [`plan`]): the gateway lists every node's
//! keys at start and then every [`PERIOD`], and creates or deletes what differs, so a key
//! read from any node (and a tenant token signed with it) works on every node.
//!
//! Key writes through the gateway hold [`KeySync::hold`], so a round never sees a key that
//! is being created or deleted on some nodes and not yet on others.

pub mod plan;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method};
use prometheus::IntCounterVec;
use serde_json::Value;

use crate::cluster::Cluster;
use crate::fleet::Fleet;
use crate::metrics::Metrics;
use crate::tasks::{StoreError, TaskService};
use crate::transport::NodeRequest;
use plan::KeyFix;

/// How often the nodes' keys are compared.
pub const PERIOD: Duration = Duration::from_secs(10);

/// Keys asked of a node per page.
const PAGE: usize = 1000;

/// Aligns the nodes' keys; shared by the background round and the key writes.
pub struct KeySync {
    tasks: Arc<TaskService>,
    lock: tokio::sync::Mutex<()>,
    fixes: IntCounterVec,
}

impl KeySync {
    pub fn new(tasks: Arc<TaskService>, metrics: &Metrics) -> KeySync {
        let fixes = IntCounterVec::new(
            prometheus::Opts::new(
                "miroir_key_fixes_total",
                "API keys the gateway created or deleted on a node to align the fleet's keys",
            ),
            &["node", "action"],
        )
        .expect("valid metric");
        metrics.register(Box::new(fixes.clone()));
        KeySync {
            tasks,
            lock: Default::default(),
            fixes,
        }
    }

    /// Held by a key write through the gateway, for as long as it is sent to the nodes.
    pub async fn hold(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.lock.lock().await
    }

    /// Remembers that the key `uid` was deleted through the gateway, so a node that missed
    /// the deletion loses it rather than giving it back to the others.
    pub fn deleted(&self, uid: &str) -> Result<(), StoreError> {
        self.tasks.set_key_tombstone(uid, true)
    }

    /// A key created through the gateway with `uid` is wanted again.
    pub fn created(&self, uid: &str) -> Result<(), StoreError> {
        self.tasks.set_key_tombstone(uid, false)
    }

    /// One round: list every node's keys and apply what [`plan::plan`] says. The number of
    /// changes made. Nodes that do not answer are left for a later round.
    pub async fn align(&self, fleet: &Fleet) -> usize {
        // With a shared state, the gateway that leads the background work aligns for all
        // (two aligning at once would create the same key twice).
        if fleet.master.is_none() || !self.tasks.leads_background() {
            return 0;
        }
        let topology = fleet.topology.snapshot();
        let cluster = fleet.cluster(&topology);
        let _held = self.hold().await;
        let lists = futures::future::join_all(
            (0..topology.nodes.len()).map(|node| list_keys(&cluster, node)),
        )
        .await;
        let listed: Vec<(usize, Vec<Value>)> = lists
            .into_iter()
            .enumerate()
            .filter_map(|(node, keys)| Some((node, keys?)))
            .collect();
        if listed.len() < 2 {
            return 0;
        }
        let tombstones: HashSet<String> = self.tasks.key_tombstones().unwrap_or_default();
        let fixes = plan::plan(&listed, &tombstones, time::OffsetDateTime::now_utc());
        let mut done = 0;
        for fix in fixes {
            let (node, action, req) = match &fix {
                KeyFix::Create { node, body } => {
                    let mut req = NodeRequest::get("/keys");
                    req.method = Method::POST;
                    req.body = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
                    req.headers.push((
                        http::header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    ));
                    (*node, "create", req)
                }
                KeyFix::Delete { node, uid } => {
                    let mut req = NodeRequest::get(format!("/keys/{uid}"));
                    req.method = Method::DELETE;
                    (*node, "delete", req)
                }
            };
            let id = &topology.nodes[node].id;
            match cluster.send(node, &cluster.own_request(req)).await {
                Ok(resp)
                    if (200..300).contains(&resp.status)
                        || (action == "delete" && resp.status == 404) =>
                {
                    log::info!("keys: {action}d {} on {id}", describe(&fix));
                    self.fixes.with_label_values(&[id, action]).inc();
                    done += 1;
                }
                Ok(resp) => log::warn!(
                    "keys: could not {action} {} on {id}: {} {}",
                    describe(&fix),
                    resp.status,
                    String::from_utf8_lossy(&resp.body)
                ),
                Err(e) => log::warn!("keys: could not {action} {} on {id}: {e}", describe(&fix)),
            }
        }
        done
    }
}

fn describe(fix: &KeyFix) -> String {
    match fix {
        KeyFix::Create { body, .. } => {
            format!(
                "key {} ({})",
                body["uid"],
                body["name"].as_str().unwrap_or("unnamed")
            )
        }
        KeyFix::Delete { uid, .. } => format!("key \"{uid}\""),
    }
}

/// Every key `node` holds, or `None` if it did not answer in full.
async fn list_keys(cluster: &Cluster<'_>, node: usize) -> Option<Vec<Value>> {
    let mut keys = Vec::new();
    loop {
        let path = format!("/keys?offset={}&limit={PAGE}", keys.len());
        let req = cluster.own_request(NodeRequest::get(path));
        let resp = cluster.send(node, &req).await.ok()?;
        if resp.status != 200 {
            return None;
        }
        let mut page: Value = serde_json::from_slice(&resp.body).ok()?;
        let Value::Array(results) = page["results"].take() else {
            return None;
        };
        let last = results.len() < PAGE;
        keys.extend(results);
        if last {
            return Some(keys);
        }
    }
}

#[cfg(test)]
mod tests;
