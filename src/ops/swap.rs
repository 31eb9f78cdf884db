//! `POST /swap-indexes` and `PATCH /indexes/{uid}` (a rename when the body has a `uid`),
//! atomic for readers: broadcast while holding the indexes' swap gate
//! ([`crate::swap_gate`]), held until every node has done it.

use std::time::Duration;

use serde_json::Value;

use super::{broadcast, Request, Services};
use crate::cluster::Cluster;
use crate::respond::Reply;
use crate::routes::Endpoint;

/// How long readers may be held for one swap: past it they go on, and the log says so.
const SWAP_WAIT: Duration = Duration::from_secs(30);

/// How often the swap's task is asked for while it runs.
const POLL: Duration = Duration::from_millis(20);

pub async fn swap(cluster: &Cluster<'_>, services: &Services, req: &Request<'_>) -> Reply {
    let indexes = swapped(req);
    if indexes.is_empty() {
        return broadcast::broadcast(cluster, services, req).await;
    }
    let _held = services.aliases.gate.swap(&indexes).await;
    // Past its mark's life, other gateways let their readers go even if this one stopped.
    let mark = match services.aliases.mark_swap(&indexes, SWAP_WAIT * 2).await {
        Ok(mark) => mark,
        Err(e) if e.status == 503 => {
            let retry = http::HeaderValue::from_static("1");
            return Reply::error(&e).header(http::header::RETRY_AFTER, retry);
        }
        Err(e) => return Reply::error(&e),
    };
    let reply = broadcast::broadcast(cluster, services, req).await;
    let task = (reply.status == 202)
        .then(|| serde_json::from_slice::<Value>(&reply.body).ok())
        .flatten()
        .and_then(|v| v.get("taskUid").and_then(Value::as_u64));
    if let Some(uid) = task {
        if !finished_within(cluster, services, uid, SWAP_WAIT).await {
            log::warn!(
                "swap task {uid} of {} not done on every node within {} s: reads go on, and may mix the indexes until it is",
                indexes.join(", "),
                SWAP_WAIT.as_secs()
            );
        }
    }
    if let Some(id) = mark {
        services.aliases.unmark_swap(&id).await;
    }
    reply
}

/// The indexes a swap or rename changes (none for an index update that keeps its uid).
fn swapped(req: &Request<'_>) -> Vec<String> {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    match req.route.endpoint {
        Endpoint::SwapIndexes => body
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.get("indexes").and_then(Value::as_array))
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Endpoint::IndexUpdate => {
            match (body.get("uid").and_then(Value::as_str), &req.route.index) {
                (Some(new), Some(old)) => vec![old.clone(), new.to_string()],
                _ => Vec::new(),
            }
        }
        _ => Vec::new(),
    }
}

/// Whether the gateway task `uid` finished (on every node) within `limit`.
async fn finished_within(
    cluster: &Cluster<'_>,
    services: &Services,
    uid: u64,
    limit: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let status = match services.tasks.view(cluster, uid).await {
            Ok(Some(view)) => view
                .get("status")
                .and_then(Value::as_str)
                .map(str::to_string),
            Ok(None) => return true,
            Err(e) => {
                log::warn!("swap task {uid}: {e}");
                None
            }
        };
        if matches!(status.as_deref(), Some("succeeded" | "failed" | "canceled")) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}
