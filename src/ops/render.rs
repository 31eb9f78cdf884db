//! `POST /render-template`: a node renders it. A template rendered against a document of an
//! index (`input.kind = indexDocument`) is sent to an owner of that document's shard; any
//! other to any node (templates and embedders are settings, the same on every node).

use serde_json::Value;

use super::reads::from_owner;
use super::{relay, unreachable, Request};
use crate::cluster::Cluster;
use crate::respond::Reply;

pub async fn render_template(cluster: &Cluster<'_>, req: &Request<'_>) -> Reply {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let input = &body["input"];
    let document = match (input["kind"].as_str(), input["id"].as_str()) {
        (Some("indexDocument"), Some(id)) if input["indexUid"].is_string() => Some(id),
        _ => None,
    };
    let answer = match document {
        Some(id) => from_owner(cluster, id, &req.forward()).await,
        None => cluster
            .send_any(&req.forward())
            .await
            .map(|(_, resp)| resp)
            .map_err(|e| e.to_string()),
    };
    match answer {
        Ok(resp) => relay(&resp),
        Err(e) => unreachable(&e),
    }
}
