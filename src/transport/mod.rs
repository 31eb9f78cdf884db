//! The seam between the gateway's operations and the network: a [`Transport`] sends one
//! [`NodeRequest`] to one node and returns its whole [`NodeResponse`]. The gateway's
//! implementation is the pooled Pingora [`crate::node_client::NodeClient`]; tests script one.

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};

use crate::topology::Node;

/// Sends requests to nodes.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Sends `req` to `node` and reads the whole answer.
    async fn send(&self, node: &Node, req: &NodeRequest) -> Result<NodeResponse, NodeError>;

    /// Requests of the gateway in flight to `node` now (a measure of its load).
    fn in_flight(&self, node: &Node) -> usize;
}

/// A request to a node.
#[derive(Debug, Clone)]
pub struct NodeRequest {
    pub method: Method,
    /// Path and query, e.g. `/indexes/movies/search?q=x`.
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl NodeRequest {
    pub fn get(path: impl Into<String>) -> Self {
        NodeRequest {
            method: Method::GET,
            path: path.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// A node's complete answer.
#[derive(Debug, Clone)]
pub struct NodeResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// Why a node gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeError {
    /// The connection could not be made (refused, unreachable, connect timeout).
    Connect(String),
    /// The node took longer than the read or write timeout.
    Timeout,
    /// The exchange broke after the connection was made.
    Io(String),
    /// The request could not be expressed (bad header, path); a gateway bug.
    Request(String),
    /// Every request slot to the node stayed taken for a whole read timeout.
    Busy,
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeError::Connect(e) => write!(f, "connection failed: {e}"),
            NodeError::Timeout => write!(f, "timed out"),
            NodeError::Io(e) => write!(f, "exchange failed: {e}"),
            NodeError::Request(e) => write!(f, "invalid request: {e}"),
            NodeError::Busy => write!(f, "too many requests in flight to it"),
        }
    }
}

/// Scripted nodes for deterministic tests and benchmarks (never used by the server).
#[doc(hidden)]
pub mod scripted;
