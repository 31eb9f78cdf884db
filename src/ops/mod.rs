//! The requests the gateway serves itself rather than proxying: writes split or broadcast
//! over the nodes, and the gateway-owned task routes. Each operation takes a [`Request`] and
//! the [`Cluster`] of one topology snapshot and returns a complete [`Reply`]; none of them
//! touches Pingora.

mod broadcast;
mod browse;
mod documents;
mod federated;
mod gather;
pub mod indexes;
mod placement;
mod reads;
mod search;
mod stats;
mod task_routes;
mod write;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::cluster::Cluster;
use crate::error::{ErrorType, MeiliError};
use crate::node_client::{NodeRequest, NodeResponse};
use crate::respond::Reply;
use crate::routes::{Endpoint, Route};

use crate::tasks::TaskService;

pub use indexes::IndexCache;

/// State the operations share, owned by the gateway.
pub struct Services {
    pub tasks: TaskService,
    pub indexes: IndexCache,
    pub auth: crate::auth::AuthChecker,
}

/// A client request the gateway answers itself, body read.
pub struct Request<'r> {
    pub method: &'r Method,
    pub path: &'r str,
    pub query: &'r str,
    pub headers: &'r HeaderMap,
    pub body: Bytes,
    pub route: &'r Route,
    /// Headers the plugins asked to send to nodes (e.g. the request id).
    pub upstream_headers: &'r [(HeaderName, HeaderValue)],
    /// RFC 3339 time the request arrived (a task's `enqueuedAt`).
    pub received_at: String,
}

impl Request<'_> {
    /// The path and query, as sent to a node.
    pub fn target(&self) -> String {
        if self.query.is_empty() {
            self.path.to_string()
        } else {
            format!("{}?{}", self.path, self.query)
        }
    }

    /// A request to a node carrying the client's credentials and the plugins' headers.
    pub fn to_node(
        &self,
        method: Method,
        target: String,
        content_type: Option<&HeaderValue>,
        body: Bytes,
    ) -> NodeRequest {
        let mut headers: Vec<(HeaderName, HeaderValue)> = self.upstream_headers.to_vec();
        if let Some(auth) = self.headers.get(http::header::AUTHORIZATION) {
            headers.push((http::header::AUTHORIZATION, auth.clone()));
        }
        if let Some(ct) = content_type {
            headers.push((http::header::CONTENT_TYPE, ct.clone()));
        }
        NodeRequest {
            method,
            path: target,
            headers,
            body,
        }
    }

    /// The client's request, as is, for a node.
    pub fn forward(&self) -> NodeRequest {
        self.to_node(
            self.method.clone(),
            self.target(),
            self.headers.get(http::header::CONTENT_TYPE),
            self.body.clone(),
        )
    }

    /// One query parameter, decoded.
    pub fn param(&self, name: &str) -> Option<String> {
        crate::tasks::query::pairs(self.query)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// Runs CPU-heavy work (splitting a large batch) without stalling the other tasks of a
/// multi-threaded runtime's worker.
pub fn cpu_bound<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Removes the shard tag from the attribute lists of an error message, so it reads as a
/// single node's (e.g. "Available filterable attribute patterns are: ...").
pub fn hide_tag_in_message(message: &str) -> String {
    let field = crate::shard_tag::FIELD;
    let tag = format!("`{field}`");
    let only = format!("Available filterable attribute patterns are: {tag}.");
    message
        .replace(
            &only,
            "This index does not have configured filterable attributes.",
        )
        .replace(&format!("{tag}, "), "")
        .replace(&format!(", {tag}"), "")
        // Lists written inside one pair of backticks: `a, _miroir_shard, b`.
        .replace(&format!("{field}, "), "")
        .replace(&format!(", {field}"), "")
        .replace(&tag, "``")
}

/// A node's error body with the tag hidden from its message.
fn sanitized(body: &Bytes) -> Bytes {
    let tag = crate::shard_tag::FIELD.as_bytes();
    if !body.windows(tag.len()).any(|w| w == tag) {
        return body.clone();
    }
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return body.clone();
    };
    if let Some(m) = v.get("message").and_then(serde_json::Value::as_str) {
        v["message"] = serde_json::Value::from(hide_tag_in_message(m));
    }
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

/// A node's answer passed to the client unchanged (status, JSON body; the shard tag hidden
/// from error messages).
pub fn relay(resp: &NodeResponse) -> Reply {
    let body = if resp.status >= 400 {
        sanitized(&resp.body)
    } else {
        resp.body.clone()
    };
    let mut reply = Reply::json(resp.status, body);
    if resp.body.is_empty() {
        reply.content_type = None;
    }
    if let Some(ra) = resp.headers.get(http::header::RETRY_AFTER) {
        reply.headers.push((http::header::RETRY_AFTER, ra.clone()));
    }
    reply
}

/// The gateway could not reach any node for this request.
pub fn unreachable(detail: &str) -> Reply {
    Reply::error(&MeiliError::new(
        503,
        "miroir_no_node_available",
        ErrorType::System,
        format!("No Meilisearch node could be reached: {detail}."),
    ))
}

pub fn store_failure(e: &crate::tasks::StoreError) -> Reply {
    if e.is_busy() {
        return Reply::error(&MeiliError::new(
            503,
            "miroir_task_store_busy",
            ErrorType::System,
            "The gateway is finishing an upgrade; retry in a moment.",
        ));
    }
    log::error!("{e}");
    Reply::error(&MeiliError::internal(format!(
        "The gateway could not record the task: {e}."
    )))
}

/// How long a request waits for a task store still held by a previous process.
const STORE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether [`dispatch`] serves this route (the others are proxied to one node, answered by
/// the proxy itself, or not served yet).
pub fn serves(route: &Route) -> bool {
    use crate::routes::RouteClass as C;
    use Endpoint as E;
    match route.class {
        C::OneNode => matches!(route.endpoint, E::SettingsGet | E::SettingGet),
        C::ByKey | C::Broadcast => true,
        C::FanOut => !matches!(route.endpoint, E::Similar | E::IndexFields),
        C::Gateway => matches!(
            route.endpoint,
            E::TaskGet | E::TaskList | E::TaskCancel | E::TaskDelete
        ),
        C::Unsupported => false,
    }
}

/// Serves `req`, whose route belongs to the gateway, a write class, or the fan-out classes
/// implemented here.
pub async fn dispatch(cluster: &Cluster<'_>, services: &Services, req: &Request<'_>) -> Reply {
    use Endpoint as E;
    // Writes and task routes need the task store: during a graceful upgrade it is released
    // by the previous process once its last requests are done, within its shutdown timeouts.
    let needs_store = matches!(
        req.route.class,
        crate::routes::RouteClass::ByKey | crate::routes::RouteClass::Broadcast
    ) || matches!(
        req.route.endpoint,
        E::TaskGet | E::TaskList | E::TaskCancel | E::TaskDelete
    );
    if needs_store && req.route.endpoint != E::DocumentGet {
        services.tasks.ready(STORE_WAIT).await;
    }
    match req.route.endpoint {
        E::DocumentsReplace | E::DocumentsUpdate => documents::add(cluster, services, req).await,
        E::DocumentDelete => documents::delete_one(cluster, services, req).await,
        E::DocumentsDeleteBatch => documents::delete_batch(cluster, services, req).await,
        E::TaskGet => task_routes::get(cluster, services, req).await,
        E::TaskList => task_routes::list(cluster, services, req).await,
        E::TaskCancel => task_routes::cancel(cluster, services, req).await,
        E::TaskDelete => task_routes::delete(cluster, services, req).await,
        E::GlobalStats | E::IndexStats => stats::stats(cluster, req).await,
        E::SettingsGet | E::SettingGet => reads::settings(cluster, req).await,
        E::Search => search::search(cluster, services, req).await,
        E::MultiSearch => search::multi_search(cluster, services, req).await,
        E::FacetSearch => search::facet_search(cluster, services, req).await,
        E::DocumentsBrowse | E::DocumentsFetch => browse::browse(cluster, req).await,
        E::DocumentGet => reads::document(cluster, req).await,
        _ => broadcast::broadcast(cluster, services, req).await,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_messages_lose_the_tag() {
        assert_eq!(
            super::hide_tag_in_message("Index `m`: Attribute `age` is not filterable. Available filterable attribute patterns are: `_miroir_shard`.\n2:5 age > 30"),
            "Index `m`: Attribute `age` is not filterable. This index does not have configured filterable attributes.\n2:5 age > 30"
        );
        assert_eq!(
            super::hide_tag_in_message(
                "Available filterable attribute patterns are: `_geo`, `_miroir_shard`, `color`."
            ),
            "Available filterable attribute patterns are: `_geo`, `color`."
        );
        assert_eq!(
            super::hide_tag_in_message(
                "Available filterable attributes patterns are: `_geo, _miroir_shard, brand`."
            ),
            "Available filterable attributes patterns are: `_geo, brand`."
        );
    }
}
