//! Permission checks for the endpoints the gateway answers itself.
//!
//! Nodes own the keys: the gateway asks a node whether the client's `Authorization` header
//! grants an action, by sending it a request that needs that action and has no effect, and
//! remembers the verdict briefly. A refusal carries the node's own 401/403 body, so clients
//! see exactly what Meilisearch would have said.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method};

use crate::cluster::Cluster;
use crate::transport::NodeRequest;

/// Verdicts are kept this long: a revoked key may still pass for this time.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5);
/// Beyond this many cached verdicts the cache is emptied (bounds memory under key spraying).
const MAX_ENTRIES: usize = 10_000;

/// A refusal, as the node wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub status: u16,
    pub body: Bytes,
}

/// Why a permission could not be decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    Denied(Denied),
    /// No node answered the probe.
    NoNode,
}

/// The node request that needs `action` and changes nothing. Meilisearch checks the key
/// before it reads the query, so a probe lacking its required filter still answers 401/403
/// for a bad key and 400 for a good one.
fn probe(action: &str) -> Option<(Method, &'static str)> {
    Some(match action {
        "tasks.get" => (Method::GET, "/tasks?limit=1"),
        "tasks.cancel" => (Method::POST, "/tasks/cancel"),
        "tasks.delete" => (Method::DELETE, "/tasks"),
        "metrics.get" => (Method::GET, "/metrics"),
        _ => return None,
    })
}

/// A cached verdict for one (credentials, action) pair, and when it was decided.
type Verdicts = HashMap<(Option<HeaderValue>, &'static str), (Instant, Result<(), Denied>)>;

/// Cached permission checks against the nodes.
pub struct AuthChecker {
    ttl: Duration,
    cache: Mutex<Verdicts>,
}

impl AuthChecker {
    pub fn new(ttl: Duration) -> Self {
        AuthChecker {
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `authorization` grants `action`, asked of the best node that answers.
    pub async fn check(
        &self,
        cluster: &Cluster<'_>,
        authorization: Option<&HeaderValue>,
        action: &'static str,
    ) -> Result<(), AuthError> {
        let Some((method, path)) = probe(action) else {
            log::error!("no permission probe for action `{action}`; refusing");
            return Err(AuthError::NoNode);
        };
        let key = (authorization.cloned(), action);
        if let Some((at, verdict)) = self.lock().get(&key) {
            if at.elapsed() < self.ttl {
                return verdict.clone().map_err(AuthError::Denied);
            }
        }
        let mut req = NodeRequest::get(path);
        req.method = method;
        if let Some(value) = authorization {
            req.headers
                .push((http::header::AUTHORIZATION, value.clone()));
        }
        let Ok((_, resp)) = cluster.send_any(&req).await else {
            return Err(AuthError::NoNode);
        };
        let verdict = match resp.status {
            401 | 403 => Err(Denied {
                status: resp.status,
                body: resp.body,
            }),
            _ => Ok(()),
        };
        let mut cache = self.lock();
        if cache.len() >= MAX_ENTRIES {
            cache.clear();
        }
        cache.insert(key, (Instant::now(), verdict.clone()));
        verdict.map_err(AuthError::Denied)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Verdicts> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
