//! The node calls a move makes, with the gateway's own key: indexes, settings, counts by
//! shard, deletions by shard, and waiting for a node's tasks.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method};
use serde_json::{json, Value};

use crate::fleet::Fleet;
use crate::shard_tag;
use crate::topology::Node;
use crate::transport::{NodeRequest, Transport};

/// How long a move waits for one node task before it gives up and retries later.
const TASK_WAIT: Duration = Duration::from_secs(600);

/// One node, as a move reaches it.
pub struct NodeApi<'a> {
    pub transport: &'a dyn Transport,
    /// `Bearer <master key>`.
    pub master: Option<&'a HeaderValue>,
    pub node: &'a Node,
}

impl<'a> NodeApi<'a> {
    pub fn of(fleet: &'a Fleet, node: &'a Node) -> NodeApi<'a> {
        NodeApi {
            transport: fleet.transport.as_ref(),
            master: fleet.master.as_ref(),
            node,
        }
    }

    /// Sends a request signed with the gateway's key; the status and JSON answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let mut req = NodeRequest {
            method,
            path: path.to_string(),
            headers: Vec::new(),
            body: Bytes::new(),
        };
        if let Some(body) = body {
            req.body = Bytes::from(serde_json::to_vec(body).map_err(|e| e.to_string())?);
            req.headers.push((
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ));
        }
        self.send(req).await
    }

    /// Sends `req` as is, but with the gateway's key.
    pub async fn send(&self, mut req: NodeRequest) -> Result<(u16, Value), String> {
        req.headers
            .retain(|(name, _)| name != http::header::AUTHORIZATION);
        if let Some(key) = self.master {
            req.headers.push((http::header::AUTHORIZATION, key.clone()));
        }
        let resp = self
            .transport
            .send(self.node, &req)
            .await
            .map_err(|e| format!("node {}: {e}", self.node.id))?;
        let body = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        Ok((resp.status, body))
    }

    /// A 2xx answer, or an error naming the node and the call.
    pub async fn ok(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let (status, answer) = self.call(method.clone(), path, body).await?;
        if (200..300).contains(&status) {
            Ok(answer)
        } else {
            Err(format!(
                "node {}: {method} {path} answered {status}: {}",
                self.node.id, answer["message"]
            ))
        }
    }

    /// Every index: uid and primary key.
    pub async fn indexes(&self) -> Result<Vec<(String, Option<String>)>, String> {
        let mut out = Vec::new();
        loop {
            let page = self
                .ok(
                    Method::GET,
                    &format!("/indexes?limit=1000&offset={}", out.len()),
                    None,
                )
                .await?;
            let results = page["results"].as_array().cloned().unwrap_or_default();
            for r in &results {
                if let Some(uid) = r["uid"].as_str() {
                    out.push((
                        uid.to_string(),
                        r["primaryKey"].as_str().map(str::to_string),
                    ));
                }
            }
            let total = page["total"].as_u64().unwrap_or(0) as usize;
            if results.is_empty() || out.len() >= total {
                return Ok(out);
            }
        }
    }

    /// Whether the node has `index`.
    pub async fn has_index(&self, index: &str) -> Result<bool, String> {
        match self
            .call(Method::GET, &format!("/indexes/{index}"), None)
            .await?
        {
            (200, _) => Ok(true),
            (404, _) => Ok(false),
            (status, body) => Err(format!(
                "node {}: GET /indexes/{index} answered {status}: {}",
                self.node.id, body["message"]
            )),
        }
    }

    /// How many documents of `shard` the node holds in `index`.
    pub async fn count(&self, index: &str, shard: u32) -> Result<u64, String> {
        let body = json!({"filter": shard_tag::filter(&[shard]), "limit": 0});
        let answer = self
            .ok(
                Method::POST,
                &format!("/indexes/{index}/documents/fetch"),
                Some(&body),
            )
            .await?;
        answer["total"]
            .as_u64()
            .ok_or_else(|| format!("node {}: no document count for {index}", self.node.id))
    }

    /// Deletes every document of `shard` in `index`; the node task's uid.
    pub async fn delete_shard(&self, index: &str, shard: u32) -> Result<u64, String> {
        let body = json!({"filter": shard_tag::filter(&[shard])});
        let answer = self
            .ok(
                Method::POST,
                &format!("/indexes/{index}/documents/delete"),
                Some(&body),
            )
            .await?;
        task_uid(&answer)
    }

    /// The uid of the node's latest task (0 if none).
    pub async fn latest_task(&self) -> Result<u64, String> {
        let answer = self.ok(Method::GET, "/tasks?limit=1", None).await?;
        Ok(answer["results"][0]["uid"].as_u64().unwrap_or(0))
    }

    /// Waits until the node has processed every task up to `uid`.
    pub async fn drain(&self, uid: u64, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        // `from` lists tasks from that uid downwards.
        let path = format!("/tasks?statuses=enqueued,processing&from={uid}&limit=1");
        loop {
            let answer = self.ok(Method::GET, &path, None).await?;
            if answer["results"].as_array().is_some_and(Vec::is_empty) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "node {} still has tasks up to {uid} to process",
                    self.node.id
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for task `uid`; its final state (an error if it failed).
    pub async fn wait(&self, uid: u64) -> Result<Value, String> {
        let deadline = Instant::now() + TASK_WAIT;
        let mut pause = Duration::from_millis(20);
        loop {
            let task = self.ok(Method::GET, &format!("/tasks/{uid}"), None).await?;
            match task["status"].as_str() {
                Some("succeeded") => return Ok(task),
                Some("failed") | Some("canceled") => {
                    return Err(format!(
                        "node {} task {uid} ({}) {}: {}",
                        self.node.id, task["type"], task["status"], task["error"]["message"]
                    ))
                }
                _ if Instant::now() > deadline => {
                    return Err(format!("node {} task {uid} did not finish", self.node.id))
                }
                _ => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
            }
        }
    }
}

/// The `taskUid` of an answer.
pub fn task_uid(answer: &Value) -> Result<u64, String> {
    answer["taskUid"]
        .as_u64()
        .ok_or_else(|| format!("no task uid in {answer}"))
}
