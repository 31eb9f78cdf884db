//! Writes held everywhere: on this gateway (its write gate closed once the writes in flight
//! are done) and, with a shared state, on every other live gateway (a barrier mark they
//! follow, see [`super::follow`]). A change committed through the hold ends it in the same
//! step, so no write runs on the state before the change once it is visible.

use std::time::{Duration, Instant};

use tokio::sync::RwLockWriteGuard;

use super::state::{BarrierMark, State};
use super::Rebalancer;

/// Writes held for move `id`; ended by [`Held::commit`], or by dropping it (nothing changed).
pub struct Held<'r> {
    r: &'r Rebalancer,
    id: u64,
    pub started: Instant,
    committed: bool,
    _gate: Option<RwLockWriteGuard<'r, ()>>,
}

/// How long the other gateways get to hold their writes for a barrier: the writes they hold
/// meanwhile wait that long when one of them does not answer (it stopped a moment ago).
const CONFIRM_HOLD: Duration = Duration::from_secs(2);

impl Rebalancer {
    /// Holds every write, here and on the other gateways, within `budget`: the others
    /// first (they hold from the moment they see the mark), then this gateway's, so that a
    /// gateway slow to follow delays only the writes already held for the barrier.
    pub async fn hold_everywhere(&self, id: u64, budget: Duration) -> Result<Held<'_>, String> {
        let started = Instant::now();
        self.holding
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let mut held = Held {
            r: self,
            id,
            started,
            committed: false,
            _gate: None,
        };
        self.mark_barrier(id)?;
        self.confirm(budget.min(CONFIRM_HOLD))
            .await
            .map_err(|e| format!("barrier: {e}"))?;
        let gate = tokio::time::timeout(
            budget.saturating_sub(started.elapsed()),
            self.fleet.writes.close(),
        )
        .await
        .map_err(|_| "writes in flight did not finish within the barrier".to_string())?;
        held._gate = Some(gate);
        Ok(held)
    }

    /// Marks the barrier of move `id` in the shared state (nothing without one); refused
    /// while another gateway's mark is there.
    fn mark_barrier(&self, id: u64) -> Result<(), String> {
        if !self.is_shared() {
            return Ok(());
        }
        let gateway = self.tasks.holder().to_string();
        self.transact(|draft| {
            if let Some(other) = draft.barrier.as_ref().filter(|b| b.gateway != gateway) {
                return Err(format!(
                    "gateway {} still holds the writes for move {}",
                    other.gateway, other.move_id
                ));
            }
            draft.barrier = Some(BarrierMark {
                move_id: id,
                gateway: gateway.clone(),
            });
            Ok(())
        })
    }

    /// Removes the mark of move `id`'s barrier if it is this gateway's.
    fn clear_barrier(&self, id: u64) {
        if !self.is_shared() {
            return;
        }
        let holder = self.tasks.holder();
        let cleared = self.transact(|draft| {
            if draft
                .barrier
                .as_ref()
                .is_some_and(|b| b.move_id == id && b.gateway == holder)
            {
                draft.barrier = None;
            }
            Ok(())
        });
        if let Err(e) = cleared {
            log::error!(
                "rebalance: the mark of move {id}'s barrier stays until the driver ends it: {e}"
            );
        }
    }
}

impl Held<'_> {
    /// Applies `change` and ends the hold in one commit; refused if the mark is no longer
    /// this gateway's or this gateway no longer drives (another may be writing again).
    pub fn commit<T>(
        mut self,
        mut change: impl FnMut(&mut State) -> Result<T, String>,
    ) -> Result<T, String> {
        let (r, id) = (self.r, self.id);
        let holder = r.tasks.holder();
        let out = r.transact(|s| {
            if r.is_shared() {
                let ours = s
                    .barrier
                    .as_ref()
                    .is_some_and(|b| b.move_id == id && b.gateway == holder);
                if !ours || !r.driving() {
                    return Err("the barrier was ended by another gateway".to_string());
                }
            }
            let out = change(s)?;
            s.barrier = None;
            Ok(out)
        });
        self.committed = out.is_ok();
        out
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // Before the gate opens (fields drop after this).
        if !self.committed {
            self.r.clear_barrier(self.id);
        }
        self.r
            .holding
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}
