//! The Pingora filter chain: one [`Gateway`] serves every client request, and its methods read
//! in the order of a request's life.

use std::sync::atomic::Ordering;
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

mod body;
mod send;

use crate::admin;
use crate::auth::AuthError;
use crate::cache::{self, Probe};
use crate::error::MeiliError;
use crate::fleet::Fleet;
use crate::node_client::{NodeClient, ProxySlot};
use crate::ops::aliased::{read_indexes, swap_in_progress, Resolved};
use crate::ops::{self, alias_api, Services};
use crate::rebalance::gate::InOrder;
use crate::rebalance::Rebalancer;
use crate::replicas::Replicas;
use crate::respond::Reply;
use crate::routes::{self, NoRoute, Op, Route, Serve};
use crate::topology::{NodeIdx, Topology};
use body::declared_length;
use send::{send, status_label};

/// The gateway: the fleet it fronts, its operations' state and its plugins, built once at
/// start and shared by every request.
pub struct Gateway {
    pub fleet: Arc<Fleet>,
    pub services: Arc<Services>,
    /// The pooled client behind [`Fleet::transport`], for the peers of the proxy path.
    pub client: Arc<NodeClient>,
    pub plugins: Vec<Box<dyn Plugin>>,
    pub max_body_bytes: usize,
    /// Request headers at most; more answer `431` as a node does.
    pub max_headers: usize,
    /// The operator's API (`crate::admin`).
    pub rebalancer: Arc<Rebalancer>,
    /// What a context holds before its request arrives: an idle keep-alive connection must
    /// not hold a real snapshot (a moving shard's cleanup waits for old snapshots to go).
    no_topology: Arc<Topology>,
}

impl Gateway {
    pub fn new(
        fleet: Arc<Fleet>,
        services: Arc<Services>,
        client: Arc<NodeClient>,
        plugins: Vec<Box<dyn Plugin>>,
        (max_body_bytes, max_headers): (usize, usize),
        rebalancer: Arc<Rebalancer>,
    ) -> Self {
        Gateway {
            fleet,
            services,
            client,
            plugins,
            max_body_bytes,
            max_headers,
            rebalancer,
            no_topology: Arc::new(Topology::new(
                &crate::config::ClusterSpec {
                    shards: 0,
                    replication_factor: 1,
                },
                &[],
                0,
            )),
        }
    }
}

static HIT: HeaderValue = HeaderValue::from_static("hit");
static MISS: HeaderValue = HeaderValue::from_static("miss");

fn req_path(session: &Session) -> &str {
    session.req_header().uri.path()
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
    /// The proxied request's place in its node's in-flight count, and when it was sent.
    proxied: Option<(ProxySlot, Instant)>,
    /// Bytes of request body seen on the proxied path.
    body_bytes: usize,
    /// Node requests made for a request the gateway served itself.
    fanout: usize,
    /// The path a proxied request goes to, when it named an alias.
    upstream_path: Option<String>,
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
        self.fleet.metrics.in_flight.inc();
        RequestCtx {
            start: Instant::now(),
            topology: self.no_topology.clone(),
            route: Err(NoRoute::NotFound),
            exchange: Exchange::default(),
            tried: Vec::new(),
            proxied: None,
            body_bytes: 0,
            fanout: 0,
            upstream_path: None,
        }
    }

    /// Classify the route and take the topology snapshot.
    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.start = Instant::now();
        ctx.topology = self.fleet.topology.snapshot();
        // A node answers every request of a pipelined batch.
        session.downstream_session.set_pipelining_enabled(true);
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
        if session.req_header().headers.len() > self.max_headers {
            return self.reply(session, ctx, Reply::empty(431)).await;
        }
        if is_alias_api(req_path(session)) {
            let reply = self.alias_api(session, ctx).await;
            return self.reply(session, ctx, reply).await;
        }
        if req_path(session).starts_with(admin::PREFIX) {
            let req = session.req_header();
            let reply = admin::handle(
                &self.rebalancer,
                &req.method,
                req.uri.path(),
                req.headers.get(http::header::AUTHORIZATION),
            );
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
        match route.endpoint.serve() {
            Serve::Proxy => {
                let aliases = &self.services.aliases;
                aliases.ready().await;
                match Resolved::proxied_path(aliases, &route, req_path(session)) {
                    Ok(path) => ctx.upstream_path = path,
                    Err(refused) => return self.reply(session, ctx, refused).await,
                }
                Ok(false)
            }
            Serve::Op(op) => {
                let reply = match self.read_body(session).await {
                    Ok(body) => {
                        let (reply, fanout) = self.serve(session, ctx, op, &route, body).await;
                        ctx.fanout = fanout;
                        reply
                    }
                    Err(reply) => reply,
                };
                self.reply(session, ctx, reply).await
            }
            Serve::Health => {
                let reply = self.health_reply(&ctx.topology);
                self.reply(session, ctx, reply).await
            }
            // The key first, as a node checks it before anything else.
            Serve::NotServed => {
                let reply = match self.check_key(session, ctx, &route).await {
                    Err(denied) => denied,
                    Ok(()) => match route.endpoint.node_local() {
                        Some((feature, why)) => Reply::error(&MeiliError::node_local(feature, why)),
                        None => not_implemented(session),
                    },
                };
                self.reply(session, ctx, reply).await
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

    /// One-node routes: the best healthy node by the replica ranking ([`Replicas`]), never
    /// one already tried for this request.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let topology = &ctx.topology;
        let replicas = Replicas {
            topology,
            health: &self.fleet.health,
            transport: self.fleet.transport.as_ref(),
        };
        let untried = topology
            .serving_nodes()
            .iter()
            .copied()
            .filter(|n| !ctx.tried.contains(n));
        let pick = replicas.best_up(untried, |_| false);
        let Some(node) = pick else {
            return Error::e_explain(ErrorType::HTTPStatus(503), "no healthy node left to try");
        };
        ctx.tried.push(node);
        let node = &topology.nodes[node];
        ctx.proxied = Some((self.client.proxy_slot(node), Instant::now()));
        Ok(Box::new(self.client.peer(node)))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(path) = &ctx.upstream_path {
            let target = match upstream.uri.query() {
                Some(q) => format!("{path}?{q}"),
                None => path.clone(),
            };
            if let Ok(uri) = target.parse() {
                upstream.set_uri(uri);
            }
        }
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
            ErrorType::HTTPStatus(503) => {
                MeiliError::no_node_available("every node fails its health checks")
            }
            ErrorType::HTTPStatus(code) => {
                log::debug!("proxying failed: {e}");
                MeiliError::proxy_error(*code, "The gateway could not serve this request.".into())
            }
            // What went wrong, in words; Pingora's details stay in the log.
            etype => {
                let node = ctx
                    .tried
                    .last()
                    .map_or("unknown", |&n| ctx.topology.nodes[n].id.as_str());
                log::warn!("proxying to node {node} failed: {e}");
                let what = match etype {
                    ErrorType::ConnectTimedout => "the connection timed out",
                    ErrorType::ConnectRefused => "the connection was refused",
                    ErrorType::ReadTimedout | ErrorType::WriteTimedout => "it timed out",
                    _ if matches!(e.esource(), pingora::ErrorSource::Downstream) => {
                        "the client connection failed"
                    }
                    _ => "the exchange failed",
                };
                MeiliError::node_failed(node, what)
            }
        };
        let status = err.status;
        // Nothing can be written once the client is gone or a response has started.
        let writable = session.response_written().is_none()
            && !matches!(e.esource(), pingora::ErrorSource::Downstream);
        if writable {
            // The connection closes after this answer: the client is told, so that it sends
            // its next request on a new one rather than into a closed socket.
            session.set_keepalive(None);
            if let Err(write_err) =
                send(session, Reply::error(&err), &ctx.exchange.response_headers).await
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
        let metrics = &self.fleet.metrics;
        metrics.in_flight.dec();
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let elapsed = ctx.start.elapsed();
        let req = session.req_header();
        let class = ctx.class_label();
        metrics
            .requests
            .with_label_values(&[class, req.method.as_str(), status_label(status)])
            .inc();
        metrics
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
            metrics
                .node_requests
                .with_label_values(&[ctx.topology.nodes[n].id.as_str(), outcome])
                .inc();
        }
        // A proxied answer counts as the node's response time, as the fan-out path's do.
        if let (Some((_, sent)), Some(&n)) = (ctx.proxied.take(), ctx.tried.last()) {
            if (1..500).contains(&status) {
                let seconds = sent.elapsed().as_secs_f64();
                self.fleet
                    .health
                    .observe_latency(&ctx.topology.nodes[n], seconds);
            }
        }
        let fanout = ctx.fanout.max(ctx.tried.len());
        if fanout > 0 {
            metrics.fanout_width.observe(fanout as f64);
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
    /// Hands a request the gateway answers itself to [`ops::dispatch`], its aliases
    /// resolved once; the reply and how many node requests it took.
    async fn serve(
        &self,
        session: &Session,
        ctx: &RequestCtx,
        op: Op,
        route: &Route,
        body: Bytes,
    ) -> (Reply, usize) {
        crate::armed_timer::keep_armed();
        self.services.aliases.ready().await;
        let header = session.req_header();
        let resolved = match Resolved::of(&self.services.aliases, route, header.uri.path(), body) {
            Ok(resolved) => resolved,
            Err(refused) => return (refused, 0),
        };
        let route = resolved.route.as_ref().unwrap_or(route);
        let req = ops::Request {
            method: &header.method,
            path: resolved.path.as_deref().unwrap_or(header.uri.path()),
            query: header.uri.query().unwrap_or(""),
            headers: &header.headers,
            body: resolved.body.clone(),
            route,
            upstream_headers: &ctx.exchange.upstream_headers,
            received_at: crate::tasks::aggregate::now_rfc3339(),
        };
        // A write takes its snapshot inside the write gate, so a moving shard's barrier knows
        // when no write on the old placement is left (see `rebalance::gate`).
        let (_entry, topology) = if op.is_write() {
            let entry = self.fleet.writes.enter().await;
            (Some(entry), self.fleet.topology.snapshot())
        } else {
            (None, ctx.topology.clone())
        };
        let _in_order = match (&route.index, topology.recorders.is_empty()) {
            (Some(index), false) if op.is_write() => {
                let r = &self.rebalancer;
                let shared = r.is_shared().then_some(&r.tasks);
                match InOrder::take(&self.fleet.writes, shared, index).await {
                    Some(turn) => Some(turn),
                    None => return (ops::state_unavailable(), 0),
                }
            }
            _ => None,
        };
        // A read holds its indexes against a swap from its first node request to its last.
        let _reading = match read_indexes(op, &req, resolved.federated.as_deref()) {
            Some(indexes) => {
                let within = self.fleet.reads.deadline;
                match self.services.aliases.gate.read(&indexes, within).await {
                    Some(reading) => Some(reading),
                    None => return (swap_in_progress(), 0),
                }
            }
            None => None,
        };
        let cluster = self.fleet.cluster(&topology);
        if let Some(targets) = &resolved.federated {
            let reply = ops::alias_search(&cluster, &self.services, &req, targets).await;
            return (reply, cluster.sent.load(Ordering::Relaxed));
        }
        let cache = &self.services.cache;
        let probe = match resolved.echo.is_empty() {
            true => self.probe_cache(op, route, &req),
            false => Probe::Off,
        };
        let pending = match probe {
            Probe::Hit(reply) => return (reply.header(cache::HEADER, HIT.clone()), 0),
            Probe::Miss(pending) => Some(pending),
            Probe::Off => None,
        };
        let mut reply = ops::dispatch(&cluster, &self.services, op, &req).await;
        if let Some(pending) = pending {
            cache.keep(pending, &reply);
            reply = reply.header(cache::HEADER, MISS.clone());
        }
        resolved.echo_aliases(&mut reply);
        // Keys decide who sees what: answers cached for a changed key must go.
        if route.endpoint.changes_keys() && reply.status < 300 {
            cache.invalidate(None);
        }
        (reply, cluster.sent.load(Ordering::Relaxed))
    }

    /// The aliases' admin API: body, master key, then [`alias_api::handle`].
    async fn alias_api(&self, session: &mut Session, ctx: &RequestCtx) -> Reply {
        // The body first, even for a refusal: the connection stays usable for the next one.
        let body = match self.read_body(session).await {
            Ok(body) => body,
            Err(reply) => return reply,
        };
        let req = session.req_header();
        let authorization = req.headers.get(http::header::AUTHORIZATION);
        if let Err(refused) = admin::check_master(self.fleet.master.as_ref(), authorization) {
            return refused;
        }
        let (method, path) = (req.method.clone(), req.uri.path().to_string());
        let cluster = self.fleet.cluster(&ctx.topology);
        alias_api::handle(&cluster, &self.services, &method, &path, &body).await
    }

    /// The search cache's verdict on a read (`Probe::Off` for everything else).
    fn probe_cache(&self, op: Op, route: &Route, req: &ops::Request<'_>) -> Probe {
        let index = match op {
            Op::Search | Op::FacetSearch => route.index.as_deref(),
            Op::MultiSearch => None,
            _ => return Probe::Off,
        };
        let parts = cache::RequestParts {
            method: req.method.as_str(),
            path: req.path,
            query: req.query,
            authorization: req
                .headers
                .get(http::header::AUTHORIZATION)
                .map(HeaderValue::as_bytes),
            body: &req.body,
        };
        self.services.cache.probe(index, &parts)
    }

    /// Writes a reply of the gateway's own, with the plugins' response headers.
    async fn reply(&self, session: &mut Session, ctx: &RequestCtx, reply: Reply) -> Result<bool> {
        send(session, reply, &ctx.exchange.response_headers).await?;
        Ok(true)
    }

    /// Whether the client's key grants the route's action, asked of the nodes; the refusal
    /// to give otherwise.
    async fn check_key(
        &self,
        session: &Session,
        ctx: &RequestCtx,
        route: &Route,
    ) -> std::result::Result<(), Reply> {
        let cluster = self.fleet.cluster(&ctx.topology);
        let req = session.req_header();
        let authorization = req.headers.get(http::header::AUTHORIZATION);
        match self
            .services
            .auth
            .check(&cluster, authorization, route, &req.method, req.uri.path())
            .await
        {
            Ok(_) => Ok(()),
            Err(AuthError::Denied(denied)) => Err(Reply::json(denied.status, denied.body)),
            Err(AuthError::NoNode) => Err(ops::unreachable("no node answered the key check")),
        }
    }

    /// `GET /health`: available while every shard has a reachable owner.
    fn health_reply(&self, topology: &Topology) -> Reply {
        // One reading of the nodes' health serves both the verdict and its explanation.
        let health = &self.fleet.health;
        let up: Vec<bool> = topology.nodes.iter().map(|n| health.is_up(n)).collect();
        let lost = topology.unavailable_shards(|n| up[n]);
        if lost.is_empty() {
            return Reply::json(200, &br#"{"status":"available"}"#[..]);
        }
        let down: Vec<String> = topology
            .nodes
            .iter()
            .zip(&up)
            .filter(|(_, up)| !**up)
            .map(|(n, _)| format!("`{}` ({})", n.id, n.url))
            .collect();
        Reply::error(&MeiliError::fleet_unavailable(
            lost.len(),
            topology.shards,
            &down,
        ))
    }
}

/// `501` for a route the gateway does not serve.
fn is_alias_api(path: &str) -> bool {
    path.strip_prefix(alias_api::PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn not_implemented(session: &Session) -> Reply {
    let req = session.req_header();
    Reply::error(&MeiliError::not_implemented(
        req.method.as_str(),
        req.uri.path(),
    ))
}
