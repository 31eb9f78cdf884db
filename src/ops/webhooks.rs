//! `/webhooks`, answered by the gateway from its own store (see [`crate::webhooks`]): the
//! client's key is checked by a node, and so is the shape of a body (a node is asked to
//! change a webhook that does not exist: it judges the body first, then answers 404).

use http::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use super::task_routes::authorize;
use super::{relay, store_failure, unreachable, Request, Services};
use crate::cluster::Cluster;
use crate::respond::Reply;
use crate::webhooks::model::{self, WebhookError};

fn refused(e: WebhookError) -> Reply {
    Reply::error(&e.to_meili())
}

/// A node's verdict on the body's shape: `None` if it is a webhook's, else its error.
async fn judge_body(cluster: &Cluster<'_>, req: &Request<'_>) -> Option<Reply> {
    let mut probe = req.forward();
    probe.method = Method::PATCH;
    probe.path = format!("/webhooks/{}", Uuid::new_v4());
    probe
        .headers
        .retain(|(name, _)| name != http::header::AUTHORIZATION);
    let probe = cluster.own_request(probe);
    match cluster.send_any(&probe).await {
        Ok((_, resp)) if resp.status == 404 => None,
        Ok((_, resp)) => Some(relay(&resp)),
        Err(e) => Some(unreachable(&e.to_string())),
    }
}

pub async fn webhooks(cluster: &Cluster<'_>, services: &Services, req: &Request<'_>) -> Reply {
    if let Err(denied) = authorize(cluster, services, req).await {
        return denied;
    }
    let hooks = &services.webhooks;
    let uuid = req.route.param.as_deref().map(model::parse_uuid);
    if matches!(*req.method, Method::POST | Method::PATCH) {
        if let Some(reply) = judge_body(cluster, req).await {
            return reply;
        }
    }
    let _held = hooks.hold().await;
    let list = match hooks.list() {
        Ok(list) => list,
        Err(e) => return store_failure(&e),
    };
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let find = |uuid: Uuid| {
        list.iter()
            .find(|(u, _)| *u == uuid)
            .map(|(_, w)| w)
            .ok_or(WebhookError::NotFound(uuid))
    };
    let result = match (req.method.clone(), uuid) {
        (Method::GET, None) => {
            let results: Vec<Value> = list.iter().map(|(u, w)| model::view(*u, w)).collect();
            return Reply::json(200, json!({ "results": results }).to_string());
        }
        (Method::GET, Some(uuid)) => {
            return match uuid.and_then(|u| Ok((u, find(u)?))) {
                Ok((u, w)) => Reply::json(200, model::view(u, w).to_string()),
                Err(e) => refused(e),
            }
        }
        (Method::POST, None) => {
            let uuid = Uuid::new_v4();
            model::create(uuid, &body, list.len()).map(|w| (201, uuid, Some(w)))
        }
        (Method::PATCH, Some(uuid)) => uuid
            .and_then(model::editable)
            .and_then(|u| Ok((u, find(u)?)))
            .and_then(|(u, old)| Ok((200, u, Some(model::patch(u, old, &body)?)))),
        (Method::DELETE, Some(uuid)) => uuid
            .and_then(model::editable)
            .and_then(|u| find(u).map(|_| (204, u, None))),
        _ => return Reply::empty(405),
    };
    let (status, uuid, webhook) = match result {
        Ok(r) => r,
        Err(e) => return refused(e),
    };
    if let Err(e) = hooks.store(uuid, webhook.as_ref()) {
        return store_failure(&e);
    }
    match webhook {
        Some(w) => Reply::json(status, model::view(uuid, &w).to_string()),
        None => Reply::empty(204),
    }
}
