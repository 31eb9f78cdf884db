//! The rebalance state shared by the gateways of one store: one document (see
//! [`crate::state::Doc::Placement`]) changed by compare-and-set, which every gateway follows
//! ([`super::follow`]) and one of them, the holder of a lease, drives.
//!
//! Each gateway says which version it follows only once nothing it does still depends on an
//! older one: its writes that took an older snapshot have reached their nodes, its reads of
//! an older placement are done. The driver waits for every live gateway to say so before a
//! step that depends on it: copying a shard (every write to it is recorded from then on),
//! changing its owner (every gateway holds its writes), deleting the old copy.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::state::State;
use super::Rebalancer;
use crate::state::Doc;
use crate::topology::Topology;

/// What [`Rebalancer::commit`] answers when another gateway changed the state first.
pub const CONFLICT: &str = "the shared placement changed";
/// Attempts of a change that keeps losing the race with other gateways.
pub const TRIES: usize = 8;
/// The lease of the gateway that drives the moves, and how long it lasts unrenewed.
pub const LEASE: &str = "rebalance";
pub const LEASE_TTL: Duration = Duration::from_secs(10);
/// How long the driver waits for the other gateways to follow a step.
pub const CONFIRM_WITHIN: Duration = Duration::from_secs(5);

impl Rebalancer {
    /// With a shared store: announces this gateway (so a driver waits for it from now on),
    /// then takes the shared state, or makes this gateway's the shared one if there is none
    /// yet (the first gateway of a cluster that had one). Whether the store is shared.
    pub(super) fn join_shared(&self) -> Result<bool, String> {
        if !self.is_shared() {
            return Ok(false);
        }
        let store = match self.tasks.state() {
            Ok(store) => store,
            Err(e) => {
                // Followed once the store answers (see `follow`).
                log::warn!("rebalance: the shared placement is out of reach ({e}); the local copy is used meanwhile");
                return Ok(true);
            }
        };
        self.tasks.announce(&self.desired_fingerprint());
        let (version, json) = store.doc(Doc::Placement).map_err(|e| e.to_string())?;
        if version == 0 {
            let mut mine = self.snapshot();
            mine.desired = self
                .configured()
                .iter()
                .map(super::state::DesiredNode::of)
                .collect();
            match self.commit(&mut mine) {
                Ok(()) => {
                    log::info!("rebalance: this gateway's placement is the shared one now");
                    *self.lock() = mine;
                    return Ok(true);
                }
                Err(e) if e == CONFLICT => {}
                Err(e) => return Err(e),
            }
        } else {
            self.adopt(version, &json)?;
        }
        self.reload()?;
        Ok(true)
    }

    /// Stores `state` as the next version of the shared one, if it is still the version this
    /// gateway read; keeps a copy in the data directory for the tools and a start without
    /// the store.
    pub(super) fn store_shared(&self, state: &State) -> Result<(), String> {
        let store = self.tasks.state().map_err(|e| e.to_string())?;
        let version = self.version.load(Ordering::Acquire);
        let json = serde_json::to_vec(state).map_err(|e| e.to_string())?;
        if !store
            .set_doc(Doc::Placement, version, &json)
            .map_err(|e| e.to_string())?
        {
            return Err(CONFLICT.to_string());
        }
        // Said by `follow` once nothing here depends on the version before.
        self.version.store(version + 1, Ordering::Release);
        self.keep_copy(state);
        Ok(())
    }

    /// Reads the shared state again if another gateway changed it; the topology it replaced,
    /// if the change made a new one.
    pub fn reload(&self) -> Result<Option<Arc<Topology>>, String> {
        if !self.is_shared() {
            return Ok(None);
        }
        // One at a time: two reads adopted out of order would go back a version.
        let _one = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let store = self.tasks.state().map_err(|e| e.to_string())?;
        let version = store
            .doc_version(Doc::Placement)
            .map_err(|e| e.to_string())?;
        if version == self.version.load(Ordering::Acquire) {
            return Ok(self.take_replaced());
        }
        if version == 0 {
            // Gone from the store (a Redis that lost its data). The driver's copy is the
            // latest (every change goes through it or is followed by it): it stores it
            // again, the others wait for it.
            if !self.driving() {
                return Ok(None);
            }
            log::error!("rebalance: the shared placement is gone from the store; storing this gateway's copy again");
            self.version.store(0, Ordering::Release);
            let mut mine = self.snapshot();
            return match self.commit(&mut mine) {
                Ok(()) => Ok(None),
                Err(e) => Err(e),
            };
        }
        let (version, json) = store.doc(Doc::Placement).map_err(|e| e.to_string())?;
        self.adopt(version, &json)?;
        Ok(self.take_replaced())
    }

    /// The topology the last adopted change replaced, if `follow` has not waited for its
    /// readers yet.
    fn take_replaced(&self) -> Option<Arc<Topology>> {
        self.replaced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    fn adopt(&self, version: u64, json: &[u8]) -> Result<(), String> {
        let state: State =
            serde_json::from_slice(json).map_err(|e| format!("the shared placement: {e}"))?;
        let p = &state.placement;
        let t = self.fleet.topology.snapshot();
        if p.shards != t.shards || p.replication_factor != t.replication_factor {
            return Err(format!(
                "the shared placement has {} shards and replication factor {}, this gateway's configuration {} and {}; refusing to follow it",
                p.shards, p.replication_factor, t.shards, t.replication_factor
            ));
        }
        let mut held = self.lock();
        self.version.store(version, Ordering::Release);
        *held = state;
        if let Some(before) = self.publish(&held) {
            // The oldest one: its readers are the ones to wait for.
            self.replaced
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(before);
        }
        self.keep_copy(&held);
        drop(held);
        self.wake();
        Ok(())
    }

    fn keep_copy(&self, state: &State) {
        if let Err(e) = state.write(&self.data_dir) {
            log::warn!("rebalance: the local copy of the shared placement: {e}");
        }
    }

    /// The version of the shared state this gateway holds.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Takes or renews the driver's lease (always held without a shared store); whether
    /// this gateway drives the moves now. A gateway that takes it over ends the barrier its
    /// previous holder may have left: the owner did not change, and the other gateways
    /// hold their writes until the mark is gone.
    pub fn take_lease(&self) -> bool {
        if !self.is_shared() {
            return true;
        }
        let holder = self.tasks.holder();
        let now = std::time::Instant::now();
        let mut renewed = self.renewed.lock().unwrap_or_else(|p| p.into_inner());
        let held = match self
            .tasks
            .state()
            .and_then(|s| s.lease(LEASE, holder, LEASE_TTL))
        {
            Ok(held) => {
                *renewed = held.then_some(now);
                held
            }
            // The store did not answer: nobody else can take the lease before it expires.
            Err(_) => renewed.is_some_and(|at| now.duration_since(at) < LEASE_TTL / 2),
        };
        drop(renewed);
        let was = self.driving.swap(held, Ordering::AcqRel);
        if held && !was {
            log::info!("rebalance: this gateway drives the moves");
            let _ = self.reload();
        }
        // A mark no barrier of this gateway holds was left by a driver that stopped (this
        // one before it lost the lease, or another): the owner did not change, and the other
        // gateways hold their writes until it is gone.
        if held && self.holding.load(Ordering::Acquire) == 0 && self.snapshot().barrier.is_some() {
            let cleared = self.transact(|draft| {
                draft.barrier = None;
                Ok(())
            });
            match cleared {
                Ok(()) => log::info!("rebalance: the barrier left by a stopped driver is ended"),
                Err(e) => log::warn!("rebalance: the barrier left by a stopped driver: {e}"),
            }
        }
        held
    }

    /// Waits until every other live gateway follows the current version (at most
    /// `within`); an error naming those that did not.
    pub async fn confirm(&self, within: Duration) -> Result<(), String> {
        if !self.is_shared() {
            return Ok(());
        }
        let version = self.version();
        // Asked now: a gateway started a moment ago follows this version too.
        let peers = self
            .tasks
            .live_peers(&self.desired_fingerprint())
            .map_err(|e| format!("the other gateways: {e}"))?;
        let behind =
            crate::state::peers::confirm(&self.tasks, Doc::Placement, version, within, peers).await;
        if behind.is_empty() {
            return Ok(());
        }
        Err(format!(
            "gateway(s) {} did not follow placement version {version} within {} ms",
            behind.join(", "),
            within.as_millis()
        ))
    }
}
