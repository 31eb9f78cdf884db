//! Swaps and renames atomic for readers: each node swaps on its own, so between the first
//! node and the last a search could mix old and new shards. A read holds its indexes'
//! shared guard for its whole fan-out; a swap takes the exclusive guard of every index it
//! names (waiting for the reads in flight), and keeps it until every node has swapped.
//! Reads that arrive meanwhile wait, within their deadline.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock as Gate};

/// Gates kept before those nobody holds are dropped.
const PRUNE_AT: usize = 4096;

#[derive(Default)]
pub struct SwapGate {
    gates: RwLock<HashMap<String, Arc<Gate<()>>>>,
}

/// A read's hold on its indexes.
pub struct Reading(#[allow(dead_code)] Vec<OwnedRwLockReadGuard<()>>);

/// A swap's hold on its indexes.
pub struct Swapping(#[allow(dead_code)] Vec<OwnedRwLockWriteGuard<()>>);

impl SwapGate {
    fn gate(&self, index: &str) -> Arc<Gate<()>> {
        if let Some(g) = self
            .gates
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(index)
        {
            return g.clone();
        }
        let mut gates = self.gates.write().unwrap_or_else(|p| p.into_inner());
        // Reads of any name, existing or not, add gates: those nobody holds are dropped
        // (no one can take one meanwhile: that needs this lock).
        if gates.len() >= PRUNE_AT {
            gates.retain(|_, g| Arc::strong_count(g) > 1);
        }
        gates.entry(index.to_string()).or_default().clone()
    }

    /// Gates kept, held or not.
    pub fn len(&self) -> usize {
        self.gates.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Holds `indexes` for a read, waiting at most `within` for a swap of one of them;
    /// `None` if it did not end in time.
    pub async fn read(&self, indexes: &[String], within: Duration) -> Option<Reading> {
        let mut sorted: Vec<&String> = indexes.iter().collect();
        sorted.sort();
        sorted.dedup();
        let mut guards = Vec::with_capacity(sorted.len());
        let deadline = tokio::time::Instant::now() + within;
        for index in sorted {
            let gate = self.gate(index);
            let guard = match gate.clone().try_read_owned() {
                Ok(g) => g,
                Err(_) => tokio::time::timeout_at(deadline, gate.read_owned())
                    .await
                    .ok()?,
            };
            guards.push(guard);
        }
        Some(Reading(guards))
    }

    /// Holds `indexes` for a swap, once the reads in flight are done.
    pub async fn swap(&self, indexes: &[String]) -> Swapping {
        let mut sorted: Vec<&String> = indexes.iter().collect();
        // One order for every holder: two swaps never wait for each other in a circle.
        sorted.sort();
        sorted.dedup();
        let mut guards = Vec::with_capacity(sorted.len());
        for index in sorted {
            guards.push(self.gate(index).write_owned().await);
        }
        Swapping(guards)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_swap_waits_for_reads_and_reads_wait_for_the_swap() {
        let gate = Arc::new(SwapGate::default());
        let read = gate
            .read(&names(&["a"]), Duration::from_secs(1))
            .await
            .unwrap();
        let g = gate.clone();
        let swap = tokio::spawn(async move { g.swap(&names(&["b", "a"])).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            !swap.is_finished(),
            "the swap went ahead of a read in flight"
        );
        drop(read);
        let swapping = swap.await.unwrap();
        // A read of a swapped index waits, and gives up at its deadline.
        assert!(gate
            .read(&names(&["b"]), Duration::from_millis(50))
            .await
            .is_none());
        // Another index is not held.
        assert!(gate
            .read(&names(&["c"]), Duration::from_millis(50))
            .await
            .is_some());
        let g = gate.clone();
        let waiting =
            tokio::spawn(async move { g.read(&names(&["a", "c"]), Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(swapping);
        assert!(
            waiting.await.unwrap().is_some(),
            "a read waited past the swap's end"
        );
    }

    #[tokio::test]
    async fn reads_of_many_names_do_not_grow_the_gates_without_bound() {
        let gate = SwapGate::default();
        let held = gate
            .read(&names(&["kept"]), Duration::from_secs(1))
            .await
            .unwrap();
        for i in 0..3 * PRUNE_AT {
            let _ = gate
                .read(&[format!("index-{i}")], Duration::from_secs(1))
                .await;
        }
        assert!(gate.len() <= PRUNE_AT + 1, "{} gates", gate.len());
        assert!(
            gate.gates.read().unwrap().contains_key("kept"),
            "a held gate was dropped"
        );
        drop(held);
    }
}
