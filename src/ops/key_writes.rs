//! API key writes: every node gets the same key (one uid, hence one key string), under the
//! lock of the fleet's key alignment (`crate::keys`), and a deletion is remembered so that a
//! node that missed it loses the key too.

use bytes::Bytes;
use serde_json::Value;

use super::{relay, store_failure, unreachable, Request, Services};
use crate::cluster::Cluster;
use crate::respond::Reply;
use crate::routes::Endpoint;
use crate::transport::NodeRequest;

/// `POST /keys`, `PATCH /keys/{key}`, `DELETE /keys/{key}` on every node taking writes; the
/// first answer is the client's (nodes answer these at once, without a task).
pub async fn key_write(cluster: &Cluster<'_>, services: &Services, req: &Request<'_>) -> Reply {
    let _held = services.keys.hold().await;
    let mut request = req.forward();
    match req.route.endpoint {
        Endpoint::KeyCreate => {
            let (body, uid) = with_key_uid(&req.body);
            request.body = body;
            if let Some(uid) = uid {
                if let Err(e) = services.keys.created(&uid) {
                    return store_failure(&e);
                }
            }
        }
        Endpoint::KeyDelete => {
            if let Some(uid) = key_uid(cluster, req.route.param.as_deref()).await {
                if let Err(e) = services.keys.deleted(&uid) {
                    return store_failure(&e);
                }
            }
        }
        _ => {}
    }
    let sends = cluster
        .topology
        .write_nodes()
        .into_iter()
        .map(|n| (n, request.clone()))
        .collect();
    let results = cluster.send_each(sends).await;
    match results.iter().find_map(|(_, r)| r.as_ref().ok()) {
        Some(resp) => relay(resp),
        None => unreachable("every node failed"),
    }
}

/// A key created on every node must have one uid, so that its key string (derived from the
/// uid and the master key) is the same everywhere: the client's, or a new one. The body sent
/// and the uid (`None` if the body is not a JSON object: the nodes refuse it).
fn with_key_uid(body: &Bytes) -> (Bytes, Option<String>) {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut o)) => match o.get("uid") {
            Some(uid) => (body.clone(), uid.as_str().map(str::to_string)),
            None => {
                let uid = uuid::Uuid::new_v4().to_string();
                o.insert("uid".into(), Value::from(uid.clone()));
                let body = Bytes::from(serde_json::to_vec(&Value::Object(o)).unwrap_or_default());
                (body, Some(uid))
            }
        },
        _ => (body.clone(), None),
    }
}

/// The uid of the key a client names by uid or by key string.
async fn key_uid(cluster: &Cluster<'_>, named: Option<&str>) -> Option<String> {
    let named = named?;
    if uuid::Uuid::parse_str(named).is_ok() {
        return Some(named.to_string());
    }
    let plain = named
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !plain {
        return None;
    }
    let req = cluster.own_request(NodeRequest::get(format!("/keys/{named}")));
    let (_, resp) = cluster.send_any(&req).await.ok()?;
    let key: Value = serde_json::from_slice(&resp.body).ok()?;
    key["uid"].as_str().map(str::to_string)
}
