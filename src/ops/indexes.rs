//! What the gateway remembers of indexes: their primary key (to route documents) and whether
//! they exist, asked of a node when unknown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::Cluster;
use crate::transport::{NodeError, NodeRequest};

/// An index as a node describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexInfo {
    pub primary_key: Option<String>,
}

/// How long index settings read for merging are trusted (settings written through the
/// gateway invalidate them at once).
/// Settings kept for merging: when read, at which logical time (see `SearchCache::tick`).
type KeptSettings = (Instant, u64, Arc<Value>);

const SETTINGS_TTL: Duration = Duration::from_secs(2);

/// Primary keys by index uid. Keys the gateway inferred itself are remembered until the
/// nodes report one, so two batches sent before the first is processed route alike.
/// Also keeps index settings briefly, for merging search answers.
#[derive(Default)]
pub struct IndexCache {
    known: Mutex<HashMap<String, String>>,
    settings: Mutex<HashMap<String, KeptSettings>>,
    /// One lock per index being created by a write, so concurrent first writes pick one key.
    creating: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl IndexCache {
    /// Waits until no other write is creating `uid`, and holds that place until dropped:
    /// nodes then receive first writes in one order, and agree on the primary key.
    pub async fn creating(&self, uid: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.creating.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, l| Arc::strong_count(l) > 1);
            map.entry(uid.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The index `uid` (`None`: it does not exist).
    pub async fn lookup(
        &self,
        cluster: &Cluster<'_>,
        uid: &str,
    ) -> Result<Option<IndexInfo>, NodeError> {
        if let Some(pk) = self.lock().get(uid) {
            return Ok(Some(IndexInfo {
                primary_key: Some(pk.clone()),
            }));
        }
        let req = cluster.own_request(NodeRequest::get(format!("/indexes/{uid}")));
        let (_, resp) = cluster.send_any(&req).await?;
        match resp.status {
            200 => {
                let body: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
                let primary_key = body["primaryKey"].as_str().map(str::to_string);
                if let Some(pk) = &primary_key {
                    self.lock().insert(uid.to_string(), pk.clone());
                }
                Ok(Some(IndexInfo { primary_key }))
            }
            _ => Ok(None),
        }
    }

    /// Remembers the key the gateway chose for `uid`.
    pub fn remember(&self, uid: &str, primary_key: &str) {
        self.lock().insert(uid.to_string(), primary_key.to_string());
    }

    /// Forgets `uid` (deleted, renamed, swapped or its key changed).
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
        self.forget_settings(uid);
    }

    pub fn forget_all(&self) {
        self.lock().clear();
        self.settings_lock().clear();
    }

    fn settings_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, KeptSettings>> {
        self.settings.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Recently read settings of `uid`, if `fresh` says the index did not change since they
    /// were asked for (a settings task that finished after, even while they were being read,
    /// makes them stale at once, before its client can see it succeeded).
    /// Shared, not copied: every search of the index reads them.
    pub fn settings(&self, uid: &str, fresh: impl Fn(u64) -> bool) -> Option<Arc<Value>> {
        self.settings_lock()
            .get(uid)
            .filter(|(at, tick, _)| at.elapsed() < SETTINGS_TTL && fresh(*tick))
            .map(|(_, _, v)| v.clone())
    }

    /// Keeps `settings` of `uid`, asked for at logical time `tick`.
    pub fn remember_settings(&self, uid: &str, settings: Value, tick: u64) {
        self.settings_lock()
            .insert(uid.to_string(), (Instant::now(), tick, Arc::new(settings)));
    }

    pub fn forget_settings(&self, uid: &str) {
        self.settings_lock().remove(uid);
    }
}
