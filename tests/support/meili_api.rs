//! Client-side helpers written as an SDK user would: send, then wait for the task.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::{Client, Message};

/// A client for one Meilisearch-compatible address, with a key.
pub struct Api {
    pub client: Client,
    pub key: Option<String>,
}

impl Api {
    pub fn new(addr: std::net::SocketAddr, key: Option<&str>) -> Api {
        Api {
            client: Client::new(addr),
            key: key.map(str::to_string),
        }
    }

    pub async fn call(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Message {
        let auth = self.key.as_ref().map(|k| format!("Bearer {k}"));
        let mut headers = Vec::new();
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        if let Some(ct) = content_type {
            headers.push(("content-type", ct));
        }
        self.client
            .send(method, path, &headers, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub async fn get(&mut self, path: &str) -> Message {
        self.call("GET", path, None, b"").await
    }

    pub async fn json(&mut self, method: &str, path: &str, body: &Value) -> Message {
        self.call(
            method,
            path,
            Some("application/json"),
            body.to_string().as_bytes(),
        )
        .await
    }

    /// Polls `GET /tasks/{uid}` until the task is final; returns its view.
    pub async fn wait(&mut self, uid: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let resp = self.get(&format!("/tasks/{uid}")).await;
            assert_eq!(resp.status, 200, "task {uid}: {}", resp.text());
            let task = resp.json();
            if matches!(
                task["status"].as_str(),
                Some("succeeded" | "failed" | "canceled")
            ) {
                return task;
            }
            assert!(
                Instant::now() < deadline,
                "task {uid} never finished: {task}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends a write and waits for its task.
    pub async fn write(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Value {
        let resp = self.call(method, path, content_type, body).await;
        assert!(
            resp.status == 202 || resp.status == 200,
            "{method} {path}: {} {}",
            resp.status,
            resp.text()
        );
        let uid = resp.json()["taskUid"].as_u64().expect("a taskUid");
        self.wait(uid).await
    }
}

/// Whether the gateway behind `api` has seen another gateway on its shared state, within 10 s.
pub async fn sees_peers(api: &mut Api) -> bool {
    super::gateway::eventually(Duration::from_secs(10), async || {
        let t: Value = api.get("/_miroir/topology").await.json();
        t["peers"].as_array().is_some_and(|p| !p.is_empty())
    })
    .await
}

/// The `uid` of each result of a listing page (`/tasks`, `/batches`), in order.
pub fn result_uids(page: &Value) -> Vec<u64> {
    page["results"]
        .as_array()
        .expect("a listing page")
        .iter()
        .map(|t| t["uid"].as_u64().expect("a uid"))
        .collect()
}
