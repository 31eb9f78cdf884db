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

/// The indexes a key may use, as a node reads its `indexes` (`None`: all of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub indexes: Option<Vec<String>>,
}

/// Task kinds that concern no single index: a node hides them from keys restricted to some
/// indexes.
const NOT_ONE_INDEX: &[&str] = &[
    "indexSwap",
    "taskCancelation",
    "taskDeletion",
    "dumpCreation",
    "snapshotCreation",
    "export",
    "upgradeDatabase",
    "networkTopologyChange",
];

impl Scope {
    /// Every index (the master key, or nodes without keys).
    pub const ALL: Scope = Scope { indexes: None };

    /// No index (a key the nodes do not know).
    pub fn none() -> Scope {
        Scope {
            indexes: Some(Vec::new()),
        }
    }

    /// From a key object's `indexes` (`["*"]`, uids, or uid prefixes ending in `*`).
    pub fn from_key(key: &serde_json::Value) -> Scope {
        let patterns: Vec<String> = key["indexes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_string))
            .collect();
        if patterns.iter().any(|p| p == "*") {
            return Scope::ALL;
        }
        Scope {
            indexes: Some(patterns),
        }
    }

    /// Whether the key may use index `uid` (`movies*` matches `movies` and `movies_fr`).
    pub fn allows_index(&self, uid: &str) -> bool {
        let Some(patterns) = &self.indexes else {
            return true;
        };
        patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => uid.starts_with(prefix),
            None => p == uid,
        })
    }

    /// Whether a task (its view) is visible to the key on the task routes, as a node decides:
    /// a restricted key sees only tasks of one index it may use.
    pub fn allows_task(&self, view: &serde_json::Value) -> bool {
        if self.indexes.is_none() {
            return true;
        }
        let kind = view["type"].as_str().unwrap_or_default();
        if NOT_ONE_INDEX.contains(&kind) {
            return false;
        }
        view["indexUid"]
            .as_str()
            .is_some_and(|uid| self.allows_index(uid))
    }
}

/// A cached verdict for one (credentials, action) pair, and when it was decided.
type Verdicts = HashMap<(Option<HeaderValue>, &'static str), (Instant, Result<Scope, Denied>)>;

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

    /// Whether `authorization` grants `action`, asked of the best node that answers; the
    /// indexes the key may use when it does.
    pub async fn check(
        &self,
        cluster: &Cluster<'_>,
        authorization: Option<&HeaderValue>,
        action: &'static str,
    ) -> Result<Scope, AuthError> {
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
            _ => Ok(scope(cluster, authorization).await),
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

/// The indexes the key in `authorization` may use: all for the master key (or nodes without
/// keys), else its `indexes`, read with the gateway's key.
async fn scope(cluster: &Cluster<'_>, authorization: Option<&HeaderValue>) -> Scope {
    let Some(master) = cluster.master else {
        return Scope::ALL;
    };
    if authorization == Some(master) {
        return Scope::ALL;
    }
    let token = authorization
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let plain = !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !plain {
        return Scope::none();
    }
    let req = cluster.own_request(NodeRequest::get(format!("/keys/{token}")));
    match cluster.send_any(&req).await {
        Ok((_, resp)) if resp.status == 200 => serde_json::from_slice(&resp.body)
            .map(|key| Scope::from_key(&key))
            .unwrap_or_else(|_| Scope::none()),
        _ => Scope::none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_restricted_key_sees_the_tasks_of_its_indexes_only() {
        let scope = Scope::from_key(&json!({"indexes": ["movies", "books*"]}));
        assert!(scope.allows_index("movies") && scope.allows_index("books_fr"));
        assert!(!scope.allows_index("movies2") && !scope.allows_index("other"));
        let task = |kind: &str, index: Value| json!({"type": kind, "indexUid": index});
        use serde_json::Value;
        assert!(scope.allows_task(&task("documentAdditionOrUpdate", json!("movies"))));
        assert!(scope.allows_task(&task("settingsUpdate", json!("books"))));
        assert!(!scope.allows_task(&task("documentAdditionOrUpdate", json!("other"))));
        // Tasks of no single index are hidden from a restricted key, as on a node.
        assert!(!scope.allows_task(&task("dumpCreation", Value::Null)));
        assert!(!scope.allows_task(&task("taskCancelation", Value::Null)));
        assert!(!scope.allows_task(&task("indexSwap", Value::Null)));
        let all = Scope::from_key(&json!({"indexes": ["*"]}));
        assert_eq!(all, Scope::ALL);
        assert!(all.allows_task(&task("dumpCreation", Value::Null)));
        assert!(!Scope::none().allows_task(&task("settingsUpdate", json!("movies"))));
    }
}
