//! When each index last changed, as a logical clock: an answer is fresh while no index it
//! read has changed since its request started. Comparing clocks, rather than deleting
//! entries, closes the race of a search that started before a write and finishes after it:
//! its answer is stored, but never served.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

#[derive(Default)]
pub struct Epochs {
    clock: AtomicU64,
    /// The tick of the last change of every index that changed.
    changed: RwLock<HashMap<String, u64>>,
    /// The tick of the last change of everything (a key revoked, a swap, ...).
    all: AtomicU64,
}

impl Epochs {
    /// The tick a request starts at.
    pub fn now(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }

    /// Records a change of `index`, or of every index when `None`.
    pub fn bump(&self, index: Option<&str>) {
        match index {
            None => {
                let tick = self.clock.fetch_add(1, Ordering::SeqCst) + 1;
                self.all.fetch_max(tick, Ordering::SeqCst);
            }
            Some(index) => {
                // The tick is taken under the lock, so ticks land in the map in order.
                let mut changed = self.changed.write().unwrap_or_else(|e| e.into_inner());
                let tick = self.clock.fetch_add(1, Ordering::SeqCst) + 1;
                changed.insert(index.to_string(), tick);
            }
        }
    }

    /// Whether none of `indexes` changed after tick `since`.
    pub fn unchanged_since<'a>(
        &self,
        indexes: impl IntoIterator<Item = &'a str>,
        since: u64,
    ) -> bool {
        if self.all.load(Ordering::SeqCst) > since {
            return false;
        }
        let changed = self.changed.read().unwrap_or_else(|e| e.into_inner());
        indexes
            .into_iter()
            .all(|i| changed.get(i).is_none_or(|&tick| tick <= since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_after_the_start_makes_an_answer_stale() {
        let e = Epochs::default();
        let before = e.now();
        assert!(e.unchanged_since(["movies"], before));
        e.bump(Some("movies"));
        assert!(!e.unchanged_since(["movies"], before));
        assert!(
            e.unchanged_since(["books"], before),
            "other indexes stay fresh"
        );
        let after = e.now();
        assert!(e.unchanged_since(["movies"], after));
        e.bump(None);
        assert!(!e.unchanged_since(["books"], after));
        assert!(e.unchanged_since(["books"], e.now()));
    }
}
