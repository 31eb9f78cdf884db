//! Calls from the gateway to one node over kept-alive connections: the request written in
//! one piece, the whole answer read with Pingora's HTTP/1.1 client, the connection kept by
//! the thread that used it ([`idle`]).

mod idle;

use ahash::AHashMap as HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::BytesMut;
use futures::FutureExt;
use pingora::connectors::TransportConnector;
use pingora::http::RequestHeader;
use pingora::protocols::http::v1::client::HttpSession;
use pingora::protocols::Stream;
use pingora::upstreams::peer::HttpPeer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

use crate::config::{Limits, Timeouts};
use crate::topology::Node;
use crate::transport::{NodeError, NodeRequest, NodeResponse, Transport};

/// A shared HTTP/1.1 client to the nodes, with a bounded number of requests in flight to
/// each.
pub struct NodeClient {
    connector: TransportConnector,
    idle: idle::IdlePools<Stream>,
    timeouts: Timeouts,
    limits: Limits,
    /// Request slots of each node, by address (made on first use).
    slots: Mutex<HashMap<SocketAddr, Arc<Semaphore>>>,
    /// Requests on the proxy path in flight to each node, by address.
    proxied: Mutex<HashMap<SocketAddr, Arc<AtomicUsize>>>,
}

/// A proxied request's place in its node's in-flight count, given back when dropped.
pub struct ProxySlot(Arc<AtomicUsize>);

impl Drop for ProxySlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl NodeClient {
    pub fn new(timeouts: Timeouts, limits: Limits) -> Self {
        NodeClient {
            connector: TransportConnector::new(None),
            idle: idle::IdlePools::new(timeouts.idle, limits.node_concurrency),
            timeouts,
            limits,
            slots: Mutex::default(),
            proxied: Mutex::default(),
        }
    }

    /// Counts a request on the proxy path as in flight to `node` until the slot is dropped.
    pub fn proxy_slot(&self, node: &Node) -> ProxySlot {
        let mut proxied = self.proxied.lock().unwrap_or_else(|p| p.into_inner());
        let count = proxied.entry(node.addr).or_default().clone();
        count.fetch_add(1, Ordering::Relaxed);
        ProxySlot(count)
    }

    fn slots(&self, node: &Node) -> Arc<Semaphore> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .entry(node.addr)
            .or_insert_with(|| Arc::new(Semaphore::new(self.limits.node_concurrency)))
            .clone()
    }

    /// The peer for `node`, with the configured timeouts.
    pub fn peer(&self, node: &Node) -> HttpPeer {
        let mut peer = HttpPeer::new(node.addr, false, String::new());
        peer.options.connection_timeout = Some(self.timeouts.connect);
        peer.options.read_timeout = Some(self.timeouts.read);
        peer.options.write_timeout = Some(self.timeouts.write);
        peer.options.idle_timeout = Some(self.timeouts.idle);
        peer
    }
}

#[async_trait]
impl Transport for NodeClient {
    /// Sends `req` to `node` and reads the whole answer. A kept connection the node had
    /// already closed is retried once on a fresh one.
    async fn send(&self, node: &Node, req: &NodeRequest) -> Result<NodeResponse, NodeError> {
        let slots = self.slots(node);
        let _slot = match tokio::time::timeout(self.timeouts.read, slots.acquire()).await {
            Ok(Ok(slot)) => slot,
            _ => return Err(NodeError::Busy),
        };
        self.idle.sweep(SWEEP_EVERY, reusable);
        let peer = self.peer(node);
        let mut fresh_only = false;
        loop {
            let kept = if fresh_only {
                None
            } else {
                self.idle.take(node.addr, reusable)
            };
            let reused = kept.is_some();
            let stream = match kept {
                Some(stream) => stream,
                None => self
                    .connector
                    .new_stream(&peer)
                    .await
                    .map_err(|e| classify(&e, true))?,
            };
            match exchange(stream, &peer, &self.timeouts, node, req).await {
                Ok((resp, mut session)) => {
                    session.respect_keepalive();
                    if let Some(stream) = session.reuse().await {
                        self.idle.put(node.addr, stream);
                    }
                    return Ok(resp);
                }
                Err(Failure { error, answered }) => {
                    if reused && !answered {
                        fresh_only = true;
                        continue;
                    }
                    return Err(error);
                }
            }
        }
    }

    fn in_flight(&self, node: &Node) -> usize {
        let sent = {
            let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.get(&node.addr).map_or(0, |s| {
                self.limits
                    .node_concurrency
                    .saturating_sub(s.available_permits())
            })
        };
        let proxied = self.proxied.lock().unwrap_or_else(|p| p.into_inner());
        sent + proxied
            .get(&node.addr)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

struct Failure {
    error: NodeError,
    /// Whether any of the response had arrived (then a retry could repeat a write).
    answered: bool,
}

/// One request on `stream`; the answer and the session, to keep its connection.
async fn exchange(
    mut stream: Stream,
    peer: &HttpPeer,
    timeouts: &Timeouts,
    node: &Node,
    req: &NodeRequest,
) -> Result<(NodeResponse, HttpSession), Failure> {
    let before = |e: pingora::Error| Failure {
        error: classify(&e, false),
        answered: false,
    };
    let after = |e: pingora::Error| Failure {
        error: classify(&e, false),
        answered: true,
    };
    let bad = |e: String| Failure {
        error: NodeError::Request(e),
        answered: false,
    };
    let head = req.method == http::Method::HEAD;
    if !head {
        // Head and body in one write: one segment for the node to wake up for (Pingora's
        // client flushes the head on its own).
        let wire = request_bytes(node, req).map_err(bad)?;
        write_all(&mut stream, &wire, timeouts.write)
            .await
            .map_err(before)?;
    }
    let mut session = HttpSession::new_with_options(stream, peer);
    session.read_timeout = Some(timeouts.read);
    session.write_timeout = Some(timeouts.write);
    if head {
        // The session must know of a HEAD to read its answer without a body.
        let header = request_header(node, req).map_err(bad)?;
        session
            .write_request_header(Box::new(header))
            .await
            .map_err(|e| before(*e))?;
        session.finish_body().await.map_err(|e| before(*e))?;
    }
    // An informational answer (`100 Continue`) is followed by the real one.
    loop {
        session.read_response().await.map_err(|e| before(*e))?;
        if !session.get_status().is_some_and(|s| s.is_informational()) {
            break;
        }
    }
    let (status, headers) = match session.resp_header() {
        Some(h) => (h.status.as_u16(), h.headers.clone()),
        None => return Err(bad("no response header".into())),
    };
    // Sized once from the declared length.
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = BytesMut::with_capacity(declared.min(MAX_RESERVE));
    while let Some(chunk) = session.read_body_ref().await.map_err(|e| after(*e))? {
        body.extend_from_slice(chunk);
    }
    let resp = NodeResponse {
        status,
        headers,
        body: body.freeze(),
    };
    Ok((resp, session))
}

/// Writes `wire` on `stream` within `limit`.
async fn write_all(
    stream: &mut Stream,
    wire: &[u8],
    limit: std::time::Duration,
) -> Result<(), pingora::Error> {
    let write = async {
        stream.write_all(wire).await?;
        stream.flush().await
    };
    // Pingora's own timer, as its client has for its writes: a Tokio timer per request
    // would wake the runtime (see `crate::armed_timer`).
    let result = pingora::time::timeout(limit, write)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
    result.map_err(|e| {
        let kind = match e.kind() {
            std::io::ErrorKind::TimedOut => pingora::ErrorType::WriteTimedout,
            _ => pingora::ErrorType::WriteError,
        };
        *pingora::Error::because(kind, "writing a request to a node", e)
    })
}

/// The request line and headers as Pingora writes them (for a HEAD).
fn request_header(node: &Node, req: &NodeRequest) -> Result<RequestHeader, String> {
    let mut header = RequestHeader::build(req.method.clone(), req.path.as_bytes(), None)
        .map_err(|e| e.to_string())?;
    header
        .insert_header(http::header::HOST, node.authority.as_str())
        .map_err(|e| e.to_string())?;
    for (name, value) in &req.headers {
        header
            .insert_header(name.clone(), value.clone())
            .map_err(|e| e.to_string())?;
    }
    header
        .insert_header(http::header::CONTENT_LENGTH, req.body.len())
        .map_err(|e| e.to_string())?;
    Ok(header)
}

/// The whole HTTP/1.1 request: request line, `Host`, the request's headers, its
/// `Content-Length` and its body.
fn request_bytes(node: &Node, req: &NodeRequest) -> Result<Vec<u8>, String> {
    let path = req.path.as_bytes();
    if !path.starts_with(b"/") || !path.iter().all(|b| b.is_ascii_graphic()) {
        return Err(format!("invalid request path {:?}", req.path));
    }
    let headers: usize = req
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    let mut out = Vec::with_capacity(64 + path.len() + headers + req.body.len());
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(node.authority.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &req.headers {
        // The gateway's own framing wins, as `insert_header` had it.
        if name == http::header::HOST
            || name == http::header::CONTENT_LENGTH
            || name == http::header::TRANSFER_ENCODING
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Content-Length: ");
    out.extend_from_slice(req.body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(&req.body);
    Ok(out)
}

/// How often idle connections of every thread are checked.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether an idle connection can carry a request: the node has not closed it nor sent
/// anything unasked (Pingora's own pool checks the same). Readiness is only known without a
/// system call; a close not yet seen is caught by the retry in [`NodeClient::send`].
fn reusable(stream: &mut Stream) -> bool {
    let mut buf = [0u8; 1];
    tokio::task::unconstrained(stream.read(&mut buf))
        .now_or_never()
        .is_none()
}

/// A node's declared length is trusted up to this for the first allocation.
const MAX_RESERVE: usize = 16 << 20;

fn classify(e: &pingora::Error, connecting: bool) -> NodeError {
    use pingora::ErrorType::*;
    match e.etype() {
        ConnectTimedout | ReadTimedout | WriteTimedout => NodeError::Timeout,
        _ if connecting => NodeError::Connect(e.to_string()),
        ConnectRefused | ConnectNoRoute | ConnectError => NodeError::Connect(e.to_string()),
        _ => NodeError::Io(e.to_string()),
    }
}

#[cfg(test)]
mod tests;
