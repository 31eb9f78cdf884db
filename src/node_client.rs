//! Calls from the gateway to one node over pooled Pingora connections: one request, the whole
//! response body read, the connection returned to the pool.

use ahash::AHashMap as HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::BytesMut;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;
use tokio::sync::Semaphore;

use crate::config::{Limits, Timeouts};
use crate::topology::Node;
use crate::transport::{NodeError, NodeRequest, NodeResponse, Transport};

/// A shared, pooled HTTP/1.1 client to the nodes, with a bounded number of requests in
/// flight to each.
pub struct NodeClient {
    connector: Connector,
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
            connector: Connector::new(None),
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
    /// Sends `req` to `node` and reads the whole answer. A pooled connection the node had
    /// already closed is retried once on a fresh one.
    async fn send(&self, node: &Node, req: &NodeRequest) -> Result<NodeResponse, NodeError> {
        let slots = self.slots(node);
        let _slot = match tokio::time::timeout(self.timeouts.read, slots.acquire()).await {
            Ok(Ok(slot)) => slot,
            _ => return Err(NodeError::Busy),
        };
        let peer = self.peer(node);
        let mut fresh_only = false;
        loop {
            let (mut session, reused) = self
                .connector
                .get_http_session(&peer)
                .await
                .map_err(|e| classify(&e, true))?;
            if reused && fresh_only {
                // A second stale connection: drop it and ask again until a fresh one comes.
                continue;
            }
            session.set_read_timeout(Some(self.timeouts.read));
            session.set_write_timeout(Some(self.timeouts.write));
            match exchange(&mut session, node, req).await {
                Ok(resp) => {
                    self.connector
                        .release_http_session(session, &peer, Some(self.timeouts.idle))
                        .await;
                    return Ok(resp);
                }
                Err(Failure { error, answered }) => {
                    if reused && !answered && !fresh_only {
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

async fn exchange(
    session: &mut HttpSession,
    node: &Node,
    req: &NodeRequest,
) -> Result<NodeResponse, Failure> {
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
    let mut header = RequestHeader::build(req.method.clone(), req.path.as_bytes(), None)
        .map_err(|e| bad(e.to_string()))?;
    header
        .insert_header(http::header::HOST, node.authority.as_str())
        .map_err(|e| bad(e.to_string()))?;
    for (name, value) in &req.headers {
        header
            .insert_header(name.clone(), value.clone())
            .map_err(|e| bad(e.to_string()))?;
    }
    header
        .insert_header(http::header::CONTENT_LENGTH, req.body.len())
        .map_err(|e| bad(e.to_string()))?;
    session
        .write_request_header(Box::new(header))
        .await
        .map_err(|e| before(*e))?;
    if !req.body.is_empty() {
        session
            .write_request_body(req.body.clone(), true)
            .await
            .map_err(|e| before(*e))?;
    }
    session
        .finish_request_body()
        .await
        .map_err(|e| before(*e))?;
    session
        .read_response_header()
        .await
        .map_err(|e| before(*e))?;
    let (status, headers) = match session.response_header() {
        Some(h) => (h.status.as_u16(), h.headers.clone()),
        None => return Err(bad("no response header".into())),
    };
    // Sized once from the declared length; a body read in one chunk is kept as is.
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut first: Option<bytes::Bytes> = None;
    let mut body = BytesMut::new();
    while let Some(chunk) = session.read_response_body().await.map_err(|e| after(*e))? {
        match first.take() {
            None if body.is_empty() => first = Some(chunk),
            earlier => {
                if body.is_empty() {
                    body.reserve(declared.max(chunk.len()).min(MAX_RESERVE));
                }
                if let Some(earlier) = earlier {
                    body.extend_from_slice(&earlier);
                }
                body.extend_from_slice(&chunk);
            }
        }
    }
    let body = match first {
        Some(only) => only,
        None => body.freeze(),
    };
    Ok(NodeResponse {
        status,
        headers,
        body,
    })
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
