//! Index aliases: stable names for one index, or several read together, flipped atomically
//! (see the README's "Aliases"). The table lives in the state store as one value, so a flip
//! is one transaction; each gateway resolves requests from a snapshot of it, taken once per
//! request, and gateways sharing a store follow its version.
//!
//! The table also carries the swaps under way through any gateway, so that every gateway
//! holds the readers of a swapping index (see [`crate::swap_gate`]).

pub mod model;
pub mod resolve;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus::IntCounterVec;

use crate::error::MeiliError;
use crate::metrics::Metrics;
use crate::state::Doc;
use crate::swap_gate::{SwapGate, Swapping};
use crate::tasks::{StoreError, TaskService};
use model::{AliasTable, SwapMark};

/// How often a gateway on a shared store asks for the table's version: another gateway's
/// flip is used here within it (plus a store round trip).
pub const WATCH_PERIOD: Duration = Duration::from_millis(100);

/// How long a flip waits for the other live gateways to say they use it.
const CONFIRM_WITHIN: Duration = Duration::from_secs(2);

/// How long a request waits for a store held by a previous process (as task operations do).
const READY_WITHIN: Duration = Duration::from_secs(30);

/// Tries of a change that lost a race with another gateway's.
const CHANGE_TRIES: usize = 8;

pub struct AliasService {
    tasks: Arc<TaskService>,
    current: ArcSwap<AliasTable>,
    /// Flips kept in each alias's history.
    retention: usize,
    /// Changes through this gateway, one at a time.
    lock: tokio::sync::Mutex<()>,
    resolutions: IntCounterVec,
    flips: IntCounterVec,
    /// Reads held while an index they read is swapped.
    pub gate: SwapGate,
    /// Whether the table was read from the store at least once.
    loaded: AtomicBool,
    /// The other gateways' swaps this one holds readers for, by id.
    held: tokio::sync::Mutex<std::collections::HashMap<String, Swapping>>,
}

impl AliasService {
    pub fn new(tasks: Arc<TaskService>, retention: usize, metrics: &Metrics) -> AliasService {
        let counter = |name: &str, help: &str| {
            let c = IntCounterVec::new(prometheus::Opts::new(name, help), &["alias"])
                .expect("valid metric");
            metrics.register(Box::new(c.clone()));
            c
        };
        let service = AliasService {
            tasks,
            current: ArcSwap::from_pointee(AliasTable::default()),
            retention,
            lock: Default::default(),
            resolutions: counter(
                "miroir_alias_resolutions_total",
                "Requests that named an alias, by alias",
            ),
            flips: counter(
                "miroir_alias_flips_total",
                "Changes of an alias's targets, by alias",
            ),
            gate: SwapGate::default(),
            loaded: AtomicBool::new(false),
            held: Default::default(),
        };
        if let Err(e) = service.reload() {
            log::warn!("aliases: {e}; read again on the next change or watch round");
        }
        service
    }

    /// The table a request resolves its aliases from, start to end.
    pub fn snapshot(&self) -> Arc<AliasTable> {
        self.current.load_full()
    }

    pub fn count_resolution(&self, alias: &str) {
        self.resolutions.with_label_values(&[alias]).inc();
    }

    /// Reads the table again if the store's version moved; whether it did.
    pub fn reload(&self) -> Result<bool, StoreError> {
        let store = self.tasks.state()?;
        let version = store.doc_version(Doc::Aliases)?;
        if version == self.current.load().version {
            self.loaded.store(true, Ordering::Release);
            return Ok(false);
        }
        let (version, json) = store.doc(Doc::Aliases)?;
        self.current
            .store(Arc::new(AliasTable::decode(version, &json)));
        self.loaded.store(true, Ordering::Release);
        Ok(true)
    }

    /// Waits until the table was read once, so no request resolves against a table not
    /// read yet: a graceful upgrade's new process waits for the store the old one holds
    /// (as writes do). A shared store out of reach is not waited for: reads go on, and
    /// writes are refused without it anyway.
    pub async fn ready(&self) {
        if self.loaded.load(Ordering::Acquire) {
            return;
        }
        let deadline = std::time::Instant::now() + READY_WITHIN;
        loop {
            match self.reload() {
                Err(e) if e.is_busy() && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                _ => return,
            }
        }
    }

    /// Holds the readers of the other gateways' swaps under way, and lets go of those done
    /// (or whose gateway stopped: past their `until_ms`).
    async fn follow_swaps(&self) {
        let table = self.snapshot();
        let now = now_ms();
        let wanted: Vec<&SwapMark> = table
            .swaps
            .iter()
            .filter(|m| m.gateway != self.tasks.holder() && m.until_ms > now)
            .collect();
        let mut held = self.held.lock().await;
        held.retain(|id, _| wanted.iter().any(|m| &m.id == id));
        for mark in wanted {
            if !held.contains_key(&mark.id) {
                let swapping = self.gate.swap(&mark.indexes).await;
                held.insert(mark.id.clone(), swapping);
            }
        }
    }

    /// Follows the other gateways' changes, on a shared store.
    /// With an embedded store, reads it once it is free (a graceful upgrade's new process
    /// waits for the old one to release it), then stops.
    pub async fn watch(&self) {
        let mut down = false;
        let mut acked = None;
        loop {
            let round = self.reload();
            let shared = self.tasks.state().map(|s| s.shared()).unwrap_or(false);
            if round.is_ok() && !shared {
                return;
            }
            if round.is_ok() {
                self.follow_swaps().await;
                // Said only once the swaps it names hold this gateway's readers.
                let version = self.current.load().version;
                if acked != Some(version) {
                    let store = self.tasks.state();
                    if store
                        .and_then(|s| s.ack_doc(Doc::Aliases, self.tasks.holder(), version))
                        .is_ok()
                    {
                        acked = Some(version);
                    }
                }
            }
            match round {
                Ok(_) if down => {
                    log::info!("aliases: the shared table is readable again");
                    down = false;
                }
                Ok(_) => {}
                Err(e) if !down => {
                    log::warn!("aliases: {e}; searches keep the last table read");
                    down = true;
                }
                Err(_) => {}
            }
            tokio::time::sleep(WATCH_PERIOD).await;
        }
    }

    /// Applies `change` to the latest table and stores it in one compare-and-set, again if
    /// another gateway changed the table meanwhile; `change`'s result.
    pub async fn change<T>(
        &self,
        change: impl Fn(&mut AliasTable, usize) -> Result<T, MeiliError>,
    ) -> Result<T, MeiliError> {
        let _one = self.lock.lock().await;
        let store = self.tasks.state().map_err(|e| unavailable(&e))?;
        for _ in 0..CHANGE_TRIES {
            let (version, json) = store.doc(Doc::Aliases).map_err(|e| unavailable(&e))?;
            let mut table = AliasTable::decode(version, &json);
            let out = change(&mut table, self.retention)?;
            if store
                .set_doc(Doc::Aliases, version, &table.encode())
                .map_err(|e| unavailable(&e))?
            {
                table.version = version + 1;
                let committed = table.version;
                self.current.store(Arc::new(table));
                if let Err(e) = store.ack_doc(Doc::Aliases, self.tasks.holder(), committed) {
                    log::warn!("aliases: {e}");
                }
                return Ok(out);
            }
        }
        Err(MeiliError::new(
            409,
            "miroir_alias_conflict",
            crate::error::ErrorType::InvalidRequest,
            "The aliases kept changing through other gateways: try again.",
        ))
    }

    pub fn count_flip(&self, alias: &str) {
        self.flips.with_label_values(&[alias]).inc();
    }

    /// Waits until every other live gateway of a shared store uses the table this one has
    /// (or `CONFIRM_WITHIN` passed); the gateways that did not say so.
    pub async fn confirm(&self) -> Vec<String> {
        let version = self.current.load().version;
        let peers = self.tasks.peers().into_iter().map(|p| p.gateway).collect();
        crate::state::peers::confirm(&self.tasks, Doc::Aliases, version, CONFIRM_WITHIN, peers)
            .await
    }
}

impl AliasService {
    /// Tells the other gateways of a shared store that `indexes` are about to be swapped, and
    /// waits until they hold their readers (see [`AliasService::confirm`]); the mark's id,
    /// to remove once the swap is done. `None` with an embedded store: one gateway.
    pub async fn mark_swap(
        &self,
        indexes: &[String],
        lasts: Duration,
    ) -> Result<Option<String>, MeiliError> {
        let shared = self.tasks.state().map(|s| s.shared()).unwrap_or(false);
        if !shared {
            return Ok(None);
        }
        let mark = SwapMark {
            id: uuid::Uuid::new_v4().to_string(),
            gateway: self.tasks.holder().to_string(),
            indexes: indexes.to_vec(),
            until_ms: now_ms() + lasts.as_millis() as u64,
        };
        let id = mark.id.clone();
        self.change(|table, _| {
            let now = now_ms();
            table.swaps.retain(|m| m.until_ms > now);
            table.swaps.push(mark.clone());
            Ok(())
        })
        .await?;
        let unconfirmed = self.confirm().await;
        if !unconfirmed.is_empty() {
            log::warn!(
                "swap of {}: gateway(s) {} did not say they hold their readers; their searches may mix the indexes",
                indexes.join(", "),
                unconfirmed.join(", ")
            );
        }
        Ok(Some(id))
    }

    /// Removes a swap's mark: the other gateways let their readers go.
    pub async fn unmark_swap(&self, id: &str) {
        let done = self
            .change(|table, _| {
                table.swaps.retain(|m| m.id != id);
                Ok(())
            })
            .await;
        if let Err(e) = done {
            log::warn!("swap {id}: its mark stays until it expires: {}", e.message);
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

fn unavailable(e: &StoreError) -> MeiliError {
    log::warn!("aliases: {e}");
    MeiliError::state_unavailable()
}
