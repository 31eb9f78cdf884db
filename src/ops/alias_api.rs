//! The aliases' admin API, on the client port under `/_miroir/aliases`, master key only:
//!
//! - `GET /_miroir/aliases`: every alias
//! - `POST /_miroir/aliases`: create, `{"name", "targets" (or "target"), "writeIndex"?}`
//! - `GET /_miroir/aliases/{name}`: one, with its flip history
//! - `PATCH /_miroir/aliases/{name}`: flip to `{"targets", "writeIndex"?}`
//! - `DELETE /_miroir/aliases/{name}`

use http::Method;
use serde_json::{json, Value};

use crate::aliases::model::{self, apply, check_uid, AliasSpec};
use crate::cluster::Cluster;
use crate::error::{ErrorType, MeiliError};
use crate::respond::Reply;
use crate::transport::NodeRequest;

use super::Services;

pub const PREFIX: &str = "/_miroir/aliases";

/// Answers an alias request (its key already checked).
pub async fn handle(
    cluster: &Cluster<'_>,
    services: &Services,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Reply {
    services.aliases.ready().await;
    let rest = path.trim_end_matches('/')[PREFIX.len()..].trim_start_matches('/');
    let result = match (method, rest) {
        (&Method::GET, "") => Ok(list(services)),
        (&Method::POST, "") => create(cluster, services, body).await,
        (_, "") => return Reply::empty(405),
        (_, name) if name.contains('/') => Err(MeiliError::new(
            404,
            "miroir_not_found",
            ErrorType::InvalidRequest,
            format!("`{path}` is not part of the Miroir admin API."),
        )),
        (&Method::GET, name) => services
            .aliases
            .snapshot()
            .get(name)
            .map(|a| (200, a.view()))
            .ok_or_else(|| model::not_found(name)),
        (&Method::PATCH, name) => flip(cluster, services, name, body).await,
        (&Method::DELETE, name) => delete(services, name).await,
        _ => return Reply::empty(405),
    };
    match result {
        Ok((204, _)) => Reply::empty(204),
        Ok((status, body)) => Reply::json(status, body.to_string()),
        Err(e) if e.status == 503 => Reply::error(&e).header(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        ),
        Err(e) => Reply::error(&e),
    }
}

type Answer = Result<(u16, Value), MeiliError>;

fn list(services: &Services) -> (u16, Value) {
    let table = services.aliases.snapshot();
    let results: Vec<Value> = table.aliases.values().map(|a| a.view()).collect();
    let total = results.len();
    (200, json!({"results": results, "total": total}))
}

fn parse(body: &[u8]) -> Result<Value, MeiliError> {
    serde_json::from_slice(body)
        .map_err(|e| model::invalid(format!("The body is not valid JSON: {e}.")))
}

async fn create(cluster: &Cluster<'_>, services: &Services, body: &[u8]) -> Answer {
    let body = parse(body)?;
    let name = match body.get("name") {
        Some(Value::String(n)) => n.clone(),
        _ => return Err(model::invalid("Missing field `name` (a string).")),
    };
    check_uid(&name, "alias name")?;
    let spec = AliasSpec::parse(&body)?;
    if index_exists(cluster, &name).await? {
        return Err(MeiliError::new(
            409,
            "miroir_alias_shadows_index",
            ErrorType::InvalidRequest,
            format!("An index called `{name}` exists: an alias cannot take its name. Swap or rename that index first."),
        ));
    }
    targets_exist(cluster, &spec.targets).await?;
    let now = crate::tasks::aggregate::now_rfc3339();
    let alias = services
        .aliases
        .change(|table, retention| apply(table, &name, spec.clone(), true, retention, &now))
        .await?;
    log::info!("alias {name} created: {}", alias.targets.join(", "));
    let unconfirmed = services.aliases.confirm().await;
    Ok((201, with_unconfirmed(alias.view(), unconfirmed)))
}

async fn flip(cluster: &Cluster<'_>, services: &Services, name: &str, body: &[u8]) -> Answer {
    let spec = AliasSpec::parse(&parse(body)?)?;
    if services.aliases.snapshot().get(name).is_none() {
        return Err(model::not_found(name));
    }
    targets_exist(cluster, &spec.targets).await?;
    let now = crate::tasks::aggregate::now_rfc3339();
    let alias = services
        .aliases
        .change(|table, retention| apply(table, name, spec.clone(), false, retention, &now))
        .await?;
    services.aliases.count_flip(name);
    log::info!("alias {name} flipped to {}", alias.targets.join(", "));
    let unconfirmed = services.aliases.confirm().await;
    Ok((200, with_unconfirmed(alias.view(), unconfirmed)))
}

async fn delete(services: &Services, name: &str) -> Answer {
    services
        .aliases
        .change(|table, _| {
            table
                .aliases
                .remove(name)
                .map(drop)
                .ok_or_else(|| model::not_found(name))
        })
        .await?;
    log::info!("alias {name} deleted");
    services.aliases.confirm().await;
    Ok((204, Value::Null))
}

/// The gateways of a shared store that did not say they use the change within the bound.
fn with_unconfirmed(mut view: Value, unconfirmed: Vec<String>) -> Value {
    if !unconfirmed.is_empty() {
        view["unconfirmedGateways"] = json!(unconfirmed);
    }
    view
}

/// Whether a node knows the index `uid` (asked now: a cached answer may be stale).
async fn index_exists(cluster: &Cluster<'_>, uid: &str) -> Result<bool, MeiliError> {
    let req = cluster.own_request(NodeRequest::get(format!("/indexes/{uid}")));
    match cluster.send_any(&req).await {
        Ok((_, resp)) => Ok(resp.status == 200),
        Err(e) => Err(MeiliError::new(
            503,
            "miroir_no_node",
            ErrorType::System,
            format!("No node answered whether index `{uid}` exists: {e}"),
        )),
    }
}

async fn targets_exist(cluster: &Cluster<'_>, targets: &[String]) -> Result<(), MeiliError> {
    for t in targets {
        if !index_exists(cluster, t).await? {
            return Err(MeiliError::new(
                404,
                "index_not_found",
                ErrorType::InvalidRequest,
                format!("Index `{t}` not found."),
            ));
        }
    }
    Ok(())
}
