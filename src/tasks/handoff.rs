//! Hinted handoff: writes a node missed while the others acknowledged them are kept in the
//! task store and replayed to it, in order, once it is back, so its copy converges. Until its
//! queue is empty, new writes for that node join the queue (never overtaking older ones), and
//! reads prefer its replicas.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use http::{HeaderValue, Method};
use serde::{Deserialize, Serialize};

use serde_json::Value;

use super::{GatewayTask, NodeTaskRef, StoreError, TaskService};
use crate::cluster::Cluster;
use crate::transport::{NodeRequest, NodeResponse};

#[derive(Serialize, Deserialize)]
struct Head {
    method: String,
    path: String,
    content_type: Option<String>,
    /// The gateway task waiting for this write, if one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    task: Option<u64>,
}

/// A request as stored: a length-prefixed JSON head, then the body bytes.
pub fn encode(req: &NodeRequest) -> Vec<u8> {
    encode_for(req, None)
}

/// A request as stored, for gateway task `task`.
pub fn encode_for(req: &NodeRequest, task: Option<u64>) -> Vec<u8> {
    let head = Head {
        task,
        method: req.method.to_string(),
        path: req.path.clone(),
        content_type: req
            .headers
            .iter()
            .find(|(n, _)| n == http::header::CONTENT_TYPE)
            .and_then(|(_, v)| v.to_str().ok())
            .map(str::to_string),
    };
    let head = serde_json::to_vec(&head).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + head.len() + req.body.len());
    out.extend_from_slice(&(head.len() as u32).to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&req.body);
    out
}

/// The request back, without credentials (the replayer adds the gateway's own).
pub fn decode(bytes: &[u8]) -> Option<NodeRequest> {
    decode_for(bytes).map(|(req, _)| req)
}

/// The request back, and the gateway task waiting for it.
pub fn decode_for(bytes: &[u8]) -> Option<(NodeRequest, Option<u64>)> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let head: Head = serde_json::from_slice(bytes.get(4..4 + len)?).ok()?;
    let mut headers = Vec::new();
    if let Some(ct) = head
        .content_type
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        headers.push((http::header::CONTENT_TYPE, ct));
    }
    let req = NodeRequest {
        method: Method::from_bytes(head.method.as_bytes()).ok()?,
        path: head.path,
        headers,
        body: Bytes::copy_from_slice(&bytes[4 + len..]),
    };
    Some((req, head.task))
}

/// Hints replayed to one node per pass at most, so one slow node cannot hold the others.
const REPLAY_PER_PASS: usize = 256;

impl TaskService {
    /// The gateway task `uid` once `node` has its part (`resp`, the node's answer to the
    /// replay): the node's task joins it, or its refusal fails it.
    fn delivered(&self, uid: u64, node: &str, resp: &NodeResponse) -> Option<GatewayTask> {
        let mut task = self.get(uid).ok().flatten()?;
        if let Some(i) = task.awaiting.iter().position(|n| n == node) {
            task.awaiting.remove(i);
        }
        let body: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        match body["taskUid"].as_u64() {
            Some(node_uid) if resp.status < 400 => task.node_tasks.push(NodeTaskRef {
                node: node.to_string(),
                uid: node_uid,
                internal: false,
            }),
            _ if task.error.is_none() && body.get("code").is_some() => task.error = Some(body),
            _ => {}
        }
        Some(task)
    }

    /// Keeps a write `node` missed. Under the lagging lock, so a replay that just emptied the
    /// node's queue cannot mark it caught up with this one left behind.
    pub fn hint(&self, node: &str, req: &NodeRequest) -> Result<(), StoreError> {
        let mut lagging = self.lagging();
        self.store()?.hint_push(node, &encode(req))?;
        lagging.insert(node.to_string());
        Ok(())
    }

    /// Whether `node` has writes to catch up on.
    pub fn is_lagging(&self, node: &str) -> bool {
        self.lagging().contains(node)
    }

    /// The nodes a write must be queued behind their missed ones for: with a shared store,
    /// as its hint queues are now (another gateway may have queued one a moment ago).
    pub fn lagging_now(&self) -> BTreeSet<String> {
        if self.store().is_ok_and(|s| s.shared()) {
            self.sync_lagging();
        }
        self.lagging_nodes()
    }

    /// The nodes with writes to catch up on.
    pub fn lagging_nodes(&self) -> BTreeSet<String> {
        self.lagging().clone()
    }

    /// Writes waiting, by node.
    pub fn hint_counts(&self) -> BTreeMap<String, usize> {
        self.store()
            .and_then(|s| s.hint_counts())
            .unwrap_or_default()
    }

    /// The lagging nodes are those the store holds hints for, whichever gateway queued
    /// them or replayed them (a shared store).
    pub fn sync_lagging(&self) {
        let Ok(store) = self.store() else { return };
        // Held while reading: a hint queued meanwhile (under the same lock) is not missed.
        let mut lagging = self.lagging();
        if let Ok(counts) = store.hint_counts() {
            *lagging = counts.into_keys().collect();
        }
    }

    /// Replays missed writes to the nodes that are up, oldest first, stopping at a node's
    /// first failure (the rest wait for the next pass).
    pub async fn replay_hints(&self, cluster: &Cluster<'_>) {
        let Ok(store) = self.store() else { return };
        let counts = match store.hint_counts() {
            Ok(c) => c,
            Err(e) => return log::error!("{e}"),
        };
        for node in counts.keys() {
            let Some(idx) = cluster.topology.node_by_id(node) else {
                continue;
            };
            if !cluster.health.is_up(&cluster.topology.nodes[idx]) {
                continue;
            }
            let Ok(batch) = store.hints(node, REPLAY_PER_PASS) else {
                continue;
            };
            let mut replayed = 0;
            for (key, bytes) in batch {
                let mut task = None;
                if let Some((req, waiting)) = decode_for(&bytes) {
                    match cluster.send(idx, &cluster.own_request(req)).await {
                        Ok(resp) if resp.status < 500 => {
                            if resp.status >= 400 {
                                log::warn!(
                                    "node {node} refused a replayed write ({}): dropped",
                                    resp.status
                                );
                            }
                            task = waiting.and_then(|uid| self.delivered(uid, node, &resp));
                        }
                        _ => break,
                    }
                }
                if let Err(e) = store.hint_done(&key, task.as_ref()) {
                    log::error!("{e}");
                    break;
                }
                if let Some(t) = &task {
                    self.track(t);
                }
                replayed += 1;
            }
            if replayed > 0 {
                log::info!("replayed {replayed} missed writes to node {node}");
            }
            let mut lagging = self.lagging();
            if store.hints(node, 1).is_ok_and(|h| h.is_empty()) {
                lagging.remove(node);
                log::info!("node {node} caught up with the writes it missed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let req = NodeRequest {
            method: Method::PUT,
            path: "/indexes/m/documents?primaryKey=id".into(),
            headers: vec![
                (
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-ndjson"),
                ),
                (
                    http::header::AUTHORIZATION,
                    HeaderValue::from_static("Bearer client"),
                ),
            ],
            body: Bytes::from_static(b"{\"id\":1}\n"),
        };
        let back = decode(&encode(&req)).unwrap();
        assert_eq!(back.method, Method::PUT);
        assert_eq!(back.path, req.path);
        assert_eq!(back.body, req.body);
        // Credentials are not kept: the gateway replays with its own key.
        assert_eq!(
            back.headers,
            vec![(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson")
            )]
        );
    }
}
