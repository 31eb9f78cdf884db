//! The write gate: how a move knows no write is still in flight on an old placement.
//!
//! Every client write holds the gate open (shared) from the moment it takes its topology
//! snapshot until its nodes have answered. A move closes it (exclusive) for the instants it
//! must be sure of that: when it starts recording a shard's writes, and for the barrier
//! around a change of owner. While shards are recorded, writes to one index also go one at a
//! time, so the recorded order is the order the source node applied them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedMutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::tasks::TaskService;

#[derive(Default)]
pub struct WriteGate {
    gate: RwLock<()>,
    order: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl WriteGate {
    /// Held by a write for its whole duration; waits while the gate is closed.
    pub async fn enter(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().await
    }

    /// Closes the gate once every write in flight is done; new writes wait until it drops.
    pub async fn close(&self) -> RwLockWriteGuard<'_, ()> {
        self.gate.write().await
    }

    /// One write at a time to `index`, while shards are recorded.
    pub async fn one_at_a_time(&self, index: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut order = self.order.lock().unwrap_or_else(|p| p.into_inner());
            if order.len() > 10_000 {
                order.retain(|_, l| Arc::strong_count(l) > 1);
            }
            order.entry(index.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }
}

/// A write's turn at its index while shards are recorded: on this gateway, and across the
/// gateways of a shared store.
pub struct InOrder {
    _local: OwnedMutexGuard<()>,
    _shared: Option<SharedOrder>,
}

impl InOrder {
    /// Waits for `index`'s turn; `None` if a shared store does not give it.
    pub async fn take(
        gate: &WriteGate,
        shared: Option<&Arc<TaskService>>,
        index: &str,
    ) -> Option<InOrder> {
        let local = gate.one_at_a_time(index).await;
        let shared = match shared {
            Some(tasks) => Some(SharedOrder::take(tasks.clone(), index).await?),
            None => None,
        };
        Some(InOrder {
            _local: local,
            _shared: shared,
        })
    }
}

/// How long a gateway may keep an index's shared write order without renewing it (a
/// gateway that dies holding it delays that index's writes this long).
const ORDER_TTL: Duration = Duration::from_secs(10);
/// How long a write waits for its turn before it is refused.
const ORDER_WAIT: Duration = Duration::from_secs(30);

/// An index's write order across the gateways of a shared store, held while shards are
/// recorded (a lease per index in the store): the recorded order is the order the source
/// node applied the writes, whichever gateway they went through. Given back when dropped.
pub struct SharedOrder {
    tasks: Arc<TaskService>,
    name: String,
    token: String,
}

impl SharedOrder {
    /// Waits for `index`'s turn; `None` if the store does not answer or the wait is too
    /// long.
    pub async fn take(tasks: Arc<TaskService>, index: &str) -> Option<SharedOrder> {
        let name = format!("order:{index}");
        let token = format!("{}:{}", tasks.holder(), uuid::Uuid::new_v4());
        let deadline = tokio::time::Instant::now() + ORDER_WAIT;
        let mut pause = Duration::from_millis(1);
        loop {
            let held = tasks
                .state()
                .and_then(|s| s.lease(&name, &token, ORDER_TTL));
            match held {
                Ok(true) => return Some(SharedOrder { tasks, name, token }),
                Ok(false) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(16));
                }
                Ok(false) => return None,
                Err(e) => {
                    log::warn!("rebalance: the write order of {index}: {e}");
                    return None;
                }
            }
        }
    }
}

impl Drop for SharedOrder {
    fn drop(&mut self) {
        if let Err(e) = self
            .tasks
            .state()
            .and_then(|s| s.release(&self.name, &self.token))
        {
            log::warn!("rebalance: {} kept until it expires: {e}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn closing_waits_for_writes_in_flight_and_holds_new_ones() {
        let gate = Arc::new(WriteGate::default());
        let first = gate.enter().await;
        let g = gate.clone();
        let closer = tokio::spawn(async move {
            let _closed = g.close().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            !closer.is_finished(),
            "the gate closes only once the write is done"
        );
        // A write arriving now waits behind the closer.
        let g = gate.clone();
        let late = tokio::spawn(async move {
            let _w = g.enter().await;
            tokio::time::Instant::now()
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!late.is_finished());
        let released = tokio::time::Instant::now();
        drop(first);
        closer.await.unwrap();
        let entered = late.await.unwrap();
        assert!(entered >= released + Duration::from_millis(100));
    }
}
