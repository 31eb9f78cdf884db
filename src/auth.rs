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

use serde_json::Value;

use crate::cluster::Cluster;
use crate::routes::Route;
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
/// before it reads the query or the body, so a probe lacking its required filter, or with a
/// body that is not JSON, still answers 401/403 for a bad key and 400 for a good one. The
/// task routes have probes of their own; other routes are probed on their own path: a read
/// as is, a write with a malformed body. `None` for a deletion, which no probe can make
/// harmless.
fn probe(action: &str, method: &Method, path: &str) -> Option<NodeRequest> {
    let (method, path, body) = match action {
        "tasks.get" => (Method::GET, "/tasks?limit=1", ""),
        "tasks.cancel" => (Method::POST, "/tasks/cancel", ""),
        "tasks.delete" => (Method::DELETE, "/tasks", ""),
        "metrics.get" => (Method::GET, "/metrics", ""),
        _ if method == Method::GET => (Method::GET, path, ""),
        _ if [Method::POST, Method::PUT, Method::PATCH].contains(method) => {
            (method.clone(), path, "{")
        }
        _ => return None,
    };
    let mut req = NodeRequest::get(path);
    req.method = method;
    if !body.is_empty() {
        req.body = Bytes::from_static(b"{");
        req.headers.push((
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ));
    }
    Some(req)
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

/// Whether tasks of type `kind` concern no single index (hidden from restricted keys).
pub fn concerns_no_single_index(kind: &str) -> bool {
    NOT_ONE_INDEX.contains(&kind)
}

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
        self.allows_task_of(
            view["type"].as_str().unwrap_or_default(),
            view["indexUid"].as_str(),
        )
    }

    /// [`Scope::allows_task`] from a task's type and index.
    pub fn allows_task_of(&self, kind: &str, index_uid: Option<&str>) -> bool {
        if self.indexes.is_none() {
            return true;
        }
        !concerns_no_single_index(kind) && index_uid.is_some_and(|uid| self.allows_index(uid))
    }

    /// Whether the key sees every task.
    pub fn is_unrestricted(&self) -> bool {
        self.indexes.is_none()
    }
}

/// What a verdict is about: the credentials, the action, and the index the route names.
type Question = (Option<HeaderValue>, &'static str, Option<String>);

/// Cached verdicts, with when each was decided.
type Verdicts = HashMap<Question, (Instant, Result<Scope, Denied>)>;

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

    /// Whether `authorization` grants what `route` needs (`method path` is the request),
    /// asked of the best node that answers; the indexes the key may use when it does.
    pub async fn check(
        &self,
        cluster: &Cluster<'_>,
        authorization: Option<&HeaderValue>,
        route: &Route,
        method: &Method,
        path: &str,
    ) -> Result<Scope, AuthError> {
        let Some(action) = route.action else {
            return Ok(Scope::ALL);
        };
        let question = (authorization.cloned(), action, route.index.clone());
        if let Some((at, verdict)) = self.lock().get(&question) {
            if at.elapsed() < self.ttl {
                return verdict.clone().map_err(AuthError::Denied);
            }
        }
        let verdict = match probe(action, method, path) {
            Some(mut req) => {
                if let Some(value) = authorization {
                    req.headers
                        .push((http::header::AUTHORIZATION, value.clone()));
                }
                let Ok((_, resp)) = cluster.send_any(&req).await else {
                    return Err(AuthError::NoNode);
                };
                match resp.status {
                    401 | 403 => Err(Denied {
                        status: resp.status,
                        body: resp.body,
                    }),
                    _ => Ok(scope(cluster, authorization).await),
                }
            }
            None => by_key(cluster, authorization, action, route.index.as_deref()).await,
        };
        let mut cache = self.lock();
        if cache.len() >= MAX_ENTRIES {
            cache.clear();
        }
        cache.insert(question, (Instant::now(), verdict.clone()));
        verdict.map_err(AuthError::Denied)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Verdicts> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Meilisearch's refusals.
fn missing_header() -> Denied {
    Denied {
        status: 401,
        body: Bytes::from_static(br#"{"message":"The Authorization header is missing. It must use the bearer authorization method.","code":"missing_authorization_header","type":"auth","link":"https://docs.meilisearch.com/errors#missing_authorization_header"}"#),
    }
}

fn invalid_key() -> Denied {
    Denied {
        status: 403,
        body: Bytes::from_static(br#"{"message":"The provided API key is invalid.","code":"invalid_api_key","type":"auth","link":"https://docs.meilisearch.com/errors#invalid_api_key"}"#),
    }
}

/// The verdict for a route no request can probe harmlessly, from the key itself (read with
/// the gateway's key): its actions (wildcards as a node expands them), its indexes, its
/// expiry.
async fn by_key(
    cluster: &Cluster<'_>,
    authorization: Option<&HeaderValue>,
    action: &str,
    index: Option<&str>,
) -> Result<Scope, Denied> {
    let Some(master) = cluster.master else {
        return Ok(Scope::ALL);
    };
    let Some(header) = authorization.and_then(|v| v.to_str().ok()) else {
        return Err(missing_header());
    };
    let Some(token) = header.strip_prefix("Bearer ") else {
        return Err(missing_header());
    };
    if authorization == Some(master) {
        return Ok(Scope::ALL);
    }
    let Some(key) = key_object(cluster, token).await else {
        return Err(invalid_key());
    };
    let granted = key["actions"].as_array().into_iter().flatten().any(|a| {
        let a = a.as_str().unwrap_or_default();
        a == "*"
            || a == action
            || a.strip_suffix(".*")
                .is_some_and(|family| action.split('.').next() == Some(family))
    });
    let expired = key["expiresAt"].as_str().is_some_and(|at| {
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
            .is_ok_and(|at| at <= time::OffsetDateTime::now_utc())
    });
    let scope = Scope::from_key(&key);
    if !granted || expired || index.is_some_and(|i| !scope.allows_index(i)) {
        return Err(invalid_key());
    }
    Ok(scope)
}

/// The key object of `token`, read with the gateway's key.
async fn key_object(cluster: &Cluster<'_>, token: &str) -> Option<Value> {
    let plain = !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !plain {
        return None;
    }
    let req = cluster.own_request(NodeRequest::get(format!("/keys/{token}")));
    match cluster.send_any(&req).await {
        Ok((_, resp)) if resp.status == 200 => serde_json::from_slice(&resp.body).ok(),
        _ => None,
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
    key_object(cluster, token)
        .await
        .map_or_else(Scope::none, |key| Scope::from_key(&key))
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
