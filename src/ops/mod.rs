//! The requests the gateway serves itself rather than proxying: reads fanned out and merged,
//! writes split or broadcast over the nodes, and the gateway-owned task routes. Each
//! operation takes a [`Request`] and the [`Cluster`] of one topology snapshot and returns a
//! complete [`Reply`]; none of them touches Pingora. The I/O lives here; merging is
//! [`crate::merge`]'s.

pub mod alias_api;
pub mod aliased;
mod batches;
mod broadcast;
mod browse;
mod documents;
mod federated;
mod fields;
mod gather;
pub mod indexes;
mod key_writes;
mod metrics;
mod order;
mod reads;
mod render;
mod search;
mod similar;
mod stats;
mod swap;
mod task_documents;
mod task_routes;
mod webhooks;
mod write;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::cluster::Cluster;
use crate::error::MeiliError;
use crate::respond::Reply;
use crate::routes::{Op, Route};
use crate::transport::{NodeRequest, NodeResponse};

use crate::tasks::TaskService;

pub use indexes::IndexCache;
pub use search::alias_search;

/// State the operations share, owned by the gateway.
pub struct Services {
    pub tasks: std::sync::Arc<TaskService>,
    pub indexes: IndexCache,
    pub auth: crate::auth::AuthChecker,
    /// How much deeper than the client the nodes keep facet values.
    pub facet_depth: crate::facet_depth::FacetDepth,
    /// Search answers served again (`[cache]`).
    pub cache: std::sync::Arc<crate::cache::SearchCache>,
    /// One set of API keys on every node.
    pub keys: std::sync::Arc<crate::keys::KeySync>,
    /// The gateway's own webhooks.
    pub webhooks: std::sync::Arc<crate::webhooks::Webhooks>,
    /// Index aliases.
    pub aliases: std::sync::Arc<crate::aliases::AliasService>,
    /// Insertion-order numbers for new documents.
    pub order: crate::shard_tag::order::OrderClock,
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

impl<'r> Request<'r> {
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

    /// The same request with another body (e.g. the shard tag renamed, see
    /// [`crate::shard_tag::guard`]).
    pub fn with_body(&self, body: Vec<u8>) -> Request<'r> {
        Request {
            body: Bytes::from(body),
            received_at: self.received_at.clone(),
            ..*self
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

    /// The body as a JSON object, when the client sent one the way a node accepts it
    /// (`Content-Type: application/json`); `None` otherwise, and a node judges the request
    /// (`415`, `400` ...).
    pub fn json_object(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        let ct = self
            .headers
            .get(http::header::CONTENT_TYPE)?
            .to_str()
            .ok()?;
        let media = ct.split(';').next().unwrap_or_default().trim();
        if !media.eq_ignore_ascii_case("application/json") {
            return None;
        }
        match serde_json::from_slice(&self.body) {
            Ok(serde_json::Value::Object(o)) => Some(o),
            _ => None,
        }
    }

    /// One query parameter, decoded.
    pub fn param(&self, name: &str) -> Option<String> {
        crate::query_string::pairs(self.query)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// Input size from which work is handed off the async worker (below, the hand-off costs more
/// than the work: thread wake-ups measured at a quarter of the gateway's CPU on small
/// searches).
const CPU_BOUND_BYTES: usize = 1 << 20;

/// Runs work over `bytes` of input (splitting a batch, merging answers); when large, without
/// stalling the other tasks of a multi-threaded runtime's worker.
pub fn cpu_bound<T>(bytes: usize, f: impl FnOnce() -> T) -> T {
    let flavor = tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor());
    match flavor {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) if bytes >= CPU_BOUND_BYTES => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Total body size of node answers.
pub fn answers_len(answers: &[crate::transport::NodeResponse]) -> usize {
    answers.iter().map(|a| a.body.len()).sum()
}

/// A node's answer passed to the client unchanged (status, JSON body; the shard tag hidden
/// from error messages).
pub fn relay(resp: &NodeResponse) -> Reply {
    let body = if resp.status >= 400 {
        crate::shard_tag::messages::sanitized(&resp.body)
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
    Reply::error(&MeiliError::no_node_available(detail))
}

/// `503 miroir_state_unavailable` with `Retry-After`: the shared state store did not answer.
pub fn state_unavailable() -> Reply {
    Reply::error(&MeiliError::state_unavailable()).header(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("1"),
    )
}

pub fn store_failure(e: &crate::tasks::StoreError) -> Reply {
    if e.is_busy() {
        return Reply::error(&MeiliError::task_store_busy());
    }
    if e.is_unavailable() {
        // The background round says it once; a line per refused request would flood.
        log::debug!("{e}");
        return state_unavailable();
    }
    log::error!("{e}");
    Reply::error(&MeiliError::internal(format!(
        "The gateway could not record the task: {e}."
    )))
}

/// How long a request waits for a task store still held by a previous process.
const STORE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves `req` with `op`, the operation its route names ([`crate::routes::Endpoint::serve`]).
pub async fn dispatch(
    cluster: &Cluster<'_>,
    services: &Services,
    op: Op,
    req: &Request<'_>,
) -> Reply {
    // During a graceful upgrade the task store is released by the previous process once its
    // last requests are done, within its shutdown timeouts.
    if op.needs_store() {
        services.tasks.ready(STORE_WAIT).await;
    }
    match op {
        Op::AddDocuments => documents::add(cluster, services, req).await,
        Op::DeleteDocument => documents::delete_one(cluster, services, req).await,
        Op::DeleteDocuments => documents::delete_batch(cluster, services, req).await,
        Op::GetDocument => reads::document(cluster, req).await,
        Op::RenderTemplate => render::render_template(cluster, req).await,
        Op::Fields => fields::fields(cluster, req).await,
        Op::Similar => similar::similar(cluster, services, req).await,
        Op::TaskDocuments => task_documents::documents(cluster, services, req).await,
        Op::Webhooks => webhooks::webhooks(cluster, services, req).await,
        Op::Browse => browse::browse(cluster, req).await,
        Op::Search => search::search(cluster, services, req).await,
        Op::MultiSearch => search::multi_search(cluster, services, req).await,
        Op::FacetSearch => search::facet_search(cluster, services, req).await,
        Op::Stats => stats::stats(cluster, req).await,
        Op::Settings => reads::settings(cluster, services, req).await,
        Op::Broadcast => broadcast::broadcast(cluster, services, req).await,
        Op::Swap => swap::swap(cluster, services, req).await,
        Op::Metrics => metrics::metrics(cluster, req).await,
        Op::TaskGet => task_routes::get(cluster, services, req).await,
        Op::TaskList => task_routes::list(cluster, services, req).await,
        Op::BatchGet => batches::get(cluster, services, req).await,
        Op::BatchList => batches::list(cluster, services, req).await,
        Op::TaskCancel => task_routes::cancel(cluster, services, req).await,
        Op::TaskDelete => task_routes::delete(cluster, services, req).await,
    }
}
#[cfg(test)]
mod write_tests;
