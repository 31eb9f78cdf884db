//! An exact cache of search answers (`[cache]`, off by default): search, facet search and
//! multi-search answers kept by everything in the request that decides them (path, query,
//! body, key or tenant token), served again while no index they read has changed.
//!
//! An index changes when the gateway learns that a write to it progressed on a node (the
//! task refresh tells the cache before it stores the new status, so a client that waited for
//! its task never reads an older answer), and everything changes when keys change or a task
//! touches no single index (swaps). Writes sent straight to a node are bounded by the TTL.

mod epochs;
mod key;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};
use quick_cache::sync::Cache;
use quick_cache::{Lifecycle, Weighter};

use crate::config::CacheSettings;
use crate::metrics::Metrics;
use crate::respond::Reply;

pub use epochs::Epochs;
pub use key::{multi_search_indexes, token_expiry, RequestParts};

/// The response header saying where an answer came from (`hit` or `miss`).
pub const HEADER: HeaderName = HeaderName::from_static("x-miroir-cache");

/// What a client request finds in the cache.
pub enum Probe {
    /// The cache is off for this request.
    Off,
    Hit(Reply),
    /// Not there: serve it, then [`SearchCache::keep`] the answer.
    Miss(Pending),
}

/// A missed request, remembered until its answer is known.
pub struct Pending {
    hash: u128,
    material: Vec<u8>,
    indexes: Vec<String>,
    /// The tick the request started at: changes after it make the answer stale.
    since: u64,
    expires: Instant,
}

struct Entry {
    material: Box<[u8]>,
    indexes: Box<[String]>,
    since: u64,
    expires: Instant,
    status: u16,
    content_type: Option<&'static str>,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

/// Bytes an entry holds, with a flat allowance for its bookkeeping.
#[derive(Clone)]
struct ByBytes;

impl Weighter<u128, Arc<Entry>> for ByBytes {
    fn weight(&self, _key: &u128, e: &Arc<Entry>) -> u64 {
        let indexes: usize = e.indexes.iter().map(String::len).sum();
        (e.material.len() + e.body.len() + indexes + 256) as u64
    }
}

/// Counts evictions for the metrics.
#[derive(Clone)]
struct Evictions(IntCounter);

impl Lifecycle<u128, Arc<Entry>> for Evictions {
    type RequestState = ();
    fn begin_request(&self) {}
    fn on_evict(&self, _state: &mut (), _key: u128, _entry: Arc<Entry>) {
        self.0.inc();
    }
}

type Entries = Cache<u128, Arc<Entry>, ByBytes, ahash::RandomState, Evictions>;

struct CacheMetrics {
    lookups: IntCounterVec,
    invalidations: IntCounterVec,
    bytes: IntGauge,
}

pub struct SearchCache {
    settings: CacheSettings,
    /// `None` when the cache is off.
    entries: Option<Entries>,
    epochs: Epochs,
    metrics: CacheMetrics,
}

impl SearchCache {
    pub fn new(settings: CacheSettings, metrics: &Metrics) -> SearchCache {
        let lookups = IntCounterVec::new(
            Opts::new(
                "miroir_cache_lookups_total",
                "Search cache lookups by result (hit or miss).",
            ),
            &["result"],
        )
        .expect("valid metric");
        let invalidations = IntCounterVec::new(
            Opts::new(
                "miroir_cache_invalidations_total",
                "Changes that made cached answers stale, for one index or for all.",
            ),
            &["scope"],
        )
        .expect("valid metric");
        let evictions = IntCounter::new(
            "miroir_cache_evictions_total",
            "Cached answers evicted to stay within the memory budget.",
        )
        .expect("valid metric");
        let bytes = IntGauge::new("miroir_cache_bytes", "Bytes held by the search cache.")
            .expect("valid metric");
        for result in ["hit", "miss"] {
            lookups.with_label_values(&[result]);
        }
        for scope in ["index", "all"] {
            invalidations.with_label_values(&[scope]);
        }
        metrics.register(Box::new(lookups.clone()));
        metrics.register(Box::new(invalidations.clone()));
        metrics.register(Box::new(evictions.clone()));
        metrics.register(Box::new(bytes.clone()));
        let entries = settings.enabled.then(|| {
            // quick_cache sizes its table from an item estimate; answers run to a few KB.
            let estimated = (settings.max_bytes / 4096).clamp(16, 1 << 20) as usize;
            Cache::with(
                estimated,
                settings.max_bytes,
                ByBytes,
                ahash::RandomState::new(),
                Evictions(evictions),
            )
        });
        SearchCache {
            settings,
            entries,
            epochs: Epochs::default(),
            metrics: CacheMetrics {
                lookups,
                invalidations,
                bytes,
            },
        }
    }

    /// A cache that keeps nothing.
    pub fn off() -> SearchCache {
        SearchCache::new(CacheSettings::default(), &Metrics::new())
    }

    /// Looks a request up. `index` is the index of a search or facet search; `None` for a
    /// multi-search, whose indexes are read from its body.
    pub fn probe(&self, index: Option<&str>, parts: &RequestParts<'_>) -> Probe {
        let Some(entries) = &self.entries else {
            return Probe::Off;
        };
        let indexes = match index {
            Some(index) => vec![index.to_string()],
            None => match multi_search_indexes(parts.body) {
                Some(indexes) => indexes,
                None => return Probe::Off,
            },
        };
        if !indexes.iter().all(|i| self.settings.covers(i)) {
            return Probe::Off;
        }
        let mut ttl = self.settings.ttl;
        if let Some(exp) = parts.authorization.and_then(token_expiry) {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            match exp.checked_sub(now) {
                Some(left) if left > 0 => ttl = ttl.min(Duration::from_secs(left)),
                _ => return Probe::Off,
            }
        }
        let since = self.epochs.now();
        let material = parts.material();
        let hash = xxhash_rust::xxh3::xxh3_128(&material);
        if let Some(entry) = entries.get(&hash) {
            if *entry.material == *material {
                if self.is_fresh(&entry) {
                    self.metrics.lookups.with_label_values(&["hit"]).inc();
                    return Probe::Hit(entry.reply());
                }
                entries.remove(&hash);
                self.metrics.bytes.set(entries.weight() as i64);
            }
        }
        self.metrics.lookups.with_label_values(&["miss"]).inc();
        Probe::Miss(Pending {
            hash,
            material,
            indexes,
            since,
            expires: Instant::now() + ttl,
        })
    }

    /// Keeps the answer to a missed request, if it is a success.
    pub fn keep(&self, pending: Pending, reply: &Reply) {
        let Some(entries) = &self.entries else { return };
        if reply.status != 200 {
            return;
        }
        let entry = Entry {
            material: pending.material.into_boxed_slice(),
            indexes: pending.indexes.into_boxed_slice(),
            since: pending.since,
            expires: pending.expires,
            status: reply.status,
            content_type: reply.content_type,
            headers: reply.headers.clone(),
            body: reply.body.clone(),
        };
        entries.insert(pending.hash, Arc::new(entry));
        self.metrics.bytes.set(entries.weight() as i64);
    }

    /// Makes every answer that read `index` stale (every answer when `None`).
    /// The logical time now: what a read of an index's state remembers, to know later whether
    /// the index changed since (see [`SearchCache::unchanged_since`]).
    pub fn tick(&self) -> u64 {
        self.epochs.now()
    }

    /// Whether the gateway learnt of no change of `index` after `tick`.
    pub fn unchanged_since(&self, index: &str, tick: u64) -> bool {
        self.epochs.unchanged_since([index], tick)
    }

    pub fn invalidate(&self, index: Option<&str>) {
        self.epochs.bump(index);
        let scope = if index.is_some() { "index" } else { "all" };
        self.metrics.invalidations.with_label_values(&[scope]).inc();
    }

    fn is_fresh(&self, entry: &Entry) -> bool {
        entry.expires > Instant::now()
            && self
                .epochs
                .unchanged_since(entry.indexes.iter().map(String::as_str), entry.since)
    }
}

impl Entry {
    fn reply(&self) -> Reply {
        Reply {
            status: self.status,
            content_type: self.content_type,
            headers: self.headers.clone(),
            body: self.body.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
