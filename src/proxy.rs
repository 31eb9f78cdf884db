//! The Pingora filter chain: one [`Gateway`] serves every client request, and its methods read
//! in the order of a request's life.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderValue;
use miroir_plugins::{Exchange, Outcome, Plugin, RequestView};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::{HttpPeer, Peer};
use pingora::{Error, ErrorType, Result};

use crate::auth::AuthError;
use crate::cluster::{Cluster, ReadPolicy};
use crate::error::MeiliError;
use crate::health::NodeHealth;
use crate::metrics::Metrics;
use crate::node_client::NodeClient;
use crate::ops::{self, Services};
use crate::respond::Reply;
use crate::routes::{self, Endpoint, NoRoute, Route, RouteClass};
use crate::topology::{NodeIdx, Topology, TopologyStore};

/// Shared state of the gateway, built once at start and passed to every request.
pub struct Gateway {
    pub store: Arc<TopologyStore>,
    pub health: Arc<NodeHealth>,
    pub metrics: Arc<Metrics>,
    pub client: Arc<NodeClient>,
    pub services: Arc<Services>,
    /// `Bearer <master key>` for the gateway's own calls to nodes.
    pub master: Option<HeaderValue>,
    pub plugins: Vec<Box<dyn Plugin>>,
    pub max_body_bytes: usize,
    pub reads: ReadPolicy,
    /// Rotates the choice among healthy nodes for one-node routes.
    next_node: AtomicUsize,
}

impl Gateway {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<TopologyStore>,
        health: Arc<NodeHealth>,
        metrics: Arc<Metrics>,
        client: Arc<NodeClient>,
        services: Arc<Services>,
        master: Option<HeaderValue>,
        plugins: Vec<Box<dyn Plugin>>,
        max_body_bytes: usize,
        reads: ReadPolicy,
    ) -> Self {
        Gateway {
            store,
            health,
            metrics,
            client,
            services,
            master,
            plugins,
            max_body_bytes,
            reads,
            next_node: AtomicUsize::new(0),
        }
    }
}

/// What the gateway knows about one request.
pub struct RequestCtx {
    start: Instant,
    /// The topology snapshot this request uses from start to end.
    topology: Arc<Topology>,
    route: Result<Route, NoRoute>,
    exchange: Exchange,
    /// Nodes already tried for a proxied request, the last one being the current.
    tried: Vec<NodeIdx>,
    /// Bytes of request body seen on the proxied path.
    body_bytes: usize,
    /// Node requests made for a request the gateway served itself.
    fanout: usize,
}

impl RequestCtx {
    fn class_label(&self) -> &'static str {
        match &self.route {
            Ok(r) => r.class.as_str(),
            Err(_) => "unknown",
        }
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        // Paired with the decrement in `logging`, which pingora runs for every request.
        self.metrics.in_flight.inc();
        RequestCtx {
            start: Instant::now(),
            topology: self.store.snapshot(),
            route: Err(NoRoute::NotFound),
            exchange: Exchange::default(),
            tried: Vec::new(),
            body_bytes: 0,
            fanout: 0,
        }
    }

    /// Classify the route and take the topology snapshot.
    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.start = Instant::now();
        ctx.topology = self.store.snapshot();
        let req = session.req_header();
        ctx.route = routes::classify(&req.method, req.uri.path());
        Ok(())
    }

    /// Run the plugins, then answer whatever the gateway answers itself.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let req = session.req_header();
        let view = RequestView {
            method: &req.method,
            path: req.uri.path(),
            headers: &req.headers,
        };
        if let Outcome::Respond(reply) =
            miroir_plugins::run_chain(&self.plugins, &view, &mut ctx.exchange)
        {
            let reply = Reply::json(reply.status, reply.body);
            return self.reply(session, ctx, reply).await;
        }
        let route = match &ctx.route {
            Ok(route) => route.clone(),
            Err(NoRoute::NotFound) => return self.reply(session, ctx, Reply::empty(404)).await,
            Err(NoRoute::MethodNotAllowed { allow }) => {
                let reply = match HeaderValue::from_str(allow) {
                    Ok(v) => Reply::empty(405).header(http::header::ALLOW, v),
                    Err(_) => Reply::empty(405),
                };
                return self.reply(session, ctx, reply).await;
            }
        };
        if declared_length(session.req_header()).is_some_and(|n| n > self.max_body_bytes) {
            let e = MeiliError::payload_too_large(self.max_body_bytes);
            return self.reply(session, ctx, Reply::error(&e)).await;
        }
        let served_here = ops::serves(&route);
        if served_here {
            let reply = match self.read_body(session).await {
                Ok(body) => {
                    let (reply, fanout) = self.serve(session, ctx, &route, body).await;
                    ctx.fanout = fanout;
                    reply
                }
                Err(reply) => reply,
            };
            return self.reply(session, ctx, reply).await;
        }
        match route.class {
            RouteClass::OneNode => Ok(false),
            RouteClass::Gateway => {
                let reply = self.serve_gateway_route(session, ctx, &route).await;
                self.reply(session, ctx, reply).await
            }
            RouteClass::FanOut
            | RouteClass::ByKey
            | RouteClass::Broadcast
            | RouteClass::Unsupported => {
                let req = session.req_header();
                let e = MeiliError::not_implemented(req.method.as_str(), req.uri.path());
                self.reply(session, ctx, Reply::error(&e)).await
            }
        }
    }

    /// Cap the size of bodies that stream through to a node.
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(chunk) = body {
            ctx.body_bytes += chunk.len();
            if ctx.body_bytes > self.max_body_bytes {
                return Error::e_explain(
                    ErrorType::HTTPStatus(413),
                    "request body over the size limit",
                );
            }
        }
        Ok(())
    }

    /// One-node routes: a healthy node, rotating, never one already tried for this request.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let topology = &ctx.topology;
        let count = topology.nodes.len();
        let start = self.next_node.fetch_add(1, Ordering::Relaxed);
        let pick = (0..count)
            .map(|i| (start + i) % count)
            .find(|&n| !ctx.tried.contains(&n) && self.health.is_up(&topology.nodes[n]));
        let Some(node) = pick else {
            return Error::e_explain(ErrorType::HTTPStatus(503), "no healthy node left to try");
        };
        ctx.tried.push(node);
        Ok(Box::new(self.client.peer(&topology.nodes[node])))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(&node) = ctx.tried.last() {
            upstream.insert_header(
                http::header::HOST,
                ctx.topology.nodes[node].authority.as_str(),
            )?;
        }
        for (name, value) in &ctx.exchange.upstream_headers {
            upstream.insert_header(name.clone(), value.clone())?;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        for (name, value) in &ctx.exchange.response_headers {
            response.insert_header(name.clone(), value.clone())?;
        }
        Ok(())
    }

    /// A node that refuses the connection is skipped: the request goes to another one.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        log::warn!("cannot connect to node at {}: {e}", peer.address());
        if ctx.tried.len() < ctx.topology.nodes.len() {
            e.set_retry(true);
        }
        e
    }

    /// Failures while proxying become Meilisearch-shaped errors with a `Content-Length`.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy
    where
        RequestCtx: Send + Sync,
    {
        let err = match e.etype() {
            ErrorType::HTTPStatus(413) => MeiliError::payload_too_large(self.max_body_bytes),
            ErrorType::HTTPStatus(503) => MeiliError::no_node_available(),
            ErrorType::HTTPStatus(code) => MeiliError::new(
                *code,
                "miroir_proxy_error",
                crate::error::ErrorType::System,
                e.to_string(),
            ),
            _ => {
                let node = ctx
                    .tried
                    .last()
                    .map_or("unknown", |&n| ctx.topology.nodes[n].id.as_str());
                MeiliError::node_failed(node, &e.to_string())
            }
        };
        let status = err.status;
        // Nothing can be written once the client is gone or a response has started.
        let writable = session.response_written().is_none()
            && !matches!(e.esource(), pingora::ErrorSource::Downstream);
        if writable {
            if let Err(write_err) = Reply::error(&err)
                .send(session, &ctx.exchange.response_headers)
                .await
            {
                log::debug!("could not write the error response: {write_err}");
            }
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    /// Metrics and the access log, for every request however it ended.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        self.metrics.in_flight.dec();
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let elapsed = ctx.start.elapsed();
        let req = session.req_header();
        let class = ctx.class_label();
        self.metrics
            .requests
            .with_label_values(&[class, req.method.as_str(), status_label(status)])
            .inc();
        self.metrics
            .request_duration
            .with_label_values(&[class])
            .observe(elapsed.as_secs_f64());
        // Proxied requests count for their node too (served ones counted as they are sent).
        for (i, &n) in ctx.tried.iter().enumerate() {
            let last = i + 1 == ctx.tried.len();
            let outcome = match (last, status) {
                (false, _) | (true, 0) => "unreachable",
                (true, s) if s >= 500 => "error",
                _ => "ok",
            };
            self.metrics
                .node_requests
                .with_label_values(&[ctx.topology.nodes[n].id.as_str(), outcome])
                .inc();
        }
        let fanout = ctx.fanout.max(ctx.tried.len());
        if fanout > 0 {
            self.metrics.fanout_width.observe(fanout as f64);
        }
        let index = ctx
            .route
            .as_ref()
            .ok()
            .and_then(|r| r.index.as_deref())
            .unwrap_or("-");
        let node = ctx
            .tried
            .last()
            .map_or("-", |&n| ctx.topology.nodes[n].id.as_str());
        log::info!(
            target: "access",
            "method={} path={} class={class} index={index} status={status} duration_ms={:.3} fanout={} node={node} request_id={}{}",
            req.method,
            req.uri.path(),
            elapsed.as_secs_f64() * 1000.0,
            fanout,
            ctx.exchange.request_id.as_deref().unwrap_or("-"),
            e.map(|e| format!(" error=\"{e}\"")).unwrap_or_default(),
        );
    }
}

impl Gateway {
    /// The nodes as this request's operations reach them.
    fn cluster<'a>(&'a self, ctx: &'a RequestCtx) -> Cluster<'a> {
        Cluster::new(
            &ctx.topology,
            &self.client,
            &self.health,
            self.master.as_ref(),
            &self.metrics,
        )
        .with_reads(&self.reads)
    }

    /// Reads the whole request body, within the size limit, answering `100 Continue` first
    /// when the client waits for it.
    async fn read_body(&self, session: &mut Session) -> std::result::Result<Bytes, Reply> {
        let expects_continue = session
            .req_header()
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if expects_continue {
            if let Err(e) = session.as_downstream_mut().write_continue_response().await {
                return Err(Reply::error(&MeiliError::internal(format!(
                    "cannot answer 100-continue: {e}"
                ))));
            }
        }
        let mut body = bytes::BytesMut::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > self.max_body_bytes {
                        return Err(Reply::error(&MeiliError::payload_too_large(
                            self.max_body_bytes,
                        )));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body.freeze()),
                Err(e) => {
                    return Err(Reply::error(&MeiliError::new(
                        400,
                        "bad_request",
                        crate::error::ErrorType::InvalidRequest,
                        format!("The provided payload is incomplete and cannot be parsed: {e}"),
                    )))
                }
            }
        }
    }

    /// Hands a request the gateway answers itself to [`ops::dispatch`].
    async fn serve(
        &self,
        session: &Session,
        ctx: &RequestCtx,
        route: &Route,
        body: Bytes,
    ) -> (Reply, usize) {
        let header = session.req_header();
        let req = ops::Request {
            method: &header.method,
            path: header.uri.path(),
            query: header.uri.query().unwrap_or(""),
            headers: &header.headers,
            body,
            route,
            upstream_headers: &ctx.exchange.upstream_headers,
            received_at: crate::tasks::aggregate::now_rfc3339(),
        };
        let cluster = self.cluster(ctx);
        let reply = ops::dispatch(&cluster, &self.services, &req).await;
        (reply, cluster.sent.load(Ordering::Relaxed))
    }

    /// Writes a reply of the gateway's own, with the plugins' response headers.
    async fn reply(&self, session: &mut Session, ctx: &RequestCtx, reply: Reply) -> Result<bool> {
        reply.send(session, &ctx.exchange.response_headers).await?;
        Ok(true)
    }

    async fn serve_gateway_route(
        &self,
        session: &Session,
        ctx: &RequestCtx,
        route: &Route,
    ) -> Reply {
        if route.endpoint == Endpoint::Health {
            return self.health_reply(&ctx.topology);
        }
        if let Some(action) = route.action {
            let nodes: Vec<_> = ctx
                .topology
                .nodes
                .iter()
                .filter(|n| self.health.is_up(n))
                .collect();
            let authorization = session
                .req_header()
                .headers
                .get(http::header::AUTHORIZATION);
            match self
                .services
                .auth
                .check(&self.client, &nodes, authorization, action)
                .await
            {
                Ok(()) => {}
                Err(AuthError::Denied(denied)) => return Reply::json(denied.status, denied.body),
                Err(AuthError::NoNode) => return Reply::error(&MeiliError::no_node_available()),
            }
        }
        let req = session.req_header();
        Reply::error(&MeiliError::not_implemented(
            req.method.as_str(),
            req.uri.path(),
        ))
    }

    /// `GET /health`: available while every shard has a reachable owner.
    fn health_reply(&self, topology: &Topology) -> Reply {
        let lost = topology.unavailable_shards(|n| self.health.is_up(&topology.nodes[n]));
        if lost.is_empty() {
            return Reply::json(200, &br#"{"status":"available"}"#[..]);
        }
        let down: Vec<String> = self
            .health
            .down_nodes(topology)
            .iter()
            .map(|n| format!("`{}` ({})", n.id, n.url))
            .collect();
        let e = MeiliError::new(
            503,
            "miroir_shards_unavailable",
            crate::error::ErrorType::System,
            format!(
                "{} of {} shards have no reachable node. Unreachable nodes: {}.",
                lost.len(),
                topology.shards,
                down.join(", ")
            ),
        );
        Reply::error(&e)
    }
}

/// The request's `Content-Length`, when it declares one.
fn declared_length(req: &RequestHeader) -> Option<usize> {
    req.headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A static label per status, so metrics never allocate per request.
fn status_label(status: u16) -> &'static str {
    match status {
        0 => "0",
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        408 => "408",
        413 => "413",
        415 => "415",
        500 => "500",
        501 => "501",
        502 => "502",
        503 => "503",
        504 => "504",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}
