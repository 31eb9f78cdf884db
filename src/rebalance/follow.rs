//! How a gateway follows the rebalance state the gateways of a shared store share: it reads
//! the state again when its version moves, publishes the topology it makes, holds its
//! writes while another gateway's barrier is marked, and says which version it follows once
//! nothing it does depends on an older one (see [`super::shared`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::Rebalancer;
use crate::fleet::Fleet;
use crate::state::Doc;

/// How often the shared state's version is read.
pub const WATCH_PERIOD: Duration = Duration::from_millis(100);

/// Follows the shared state until the task is dropped; returns at once without one.
pub async fn watch(r: Arc<Rebalancer>) {
    if !r.is_shared() {
        return;
    }
    let mut hold: Option<Hold> = None;
    let mut acked = None;
    let mut down = false;
    loop {
        if r.version() == 0 {
            if let Err(e) = r.join_shared() {
                log::warn!("rebalance: {e}");
            }
        }
        match r.reload() {
            Ok(before) => {
                if down {
                    log::info!("rebalance: the shared placement is readable again");
                    down = false;
                }
                let me = r.tasks.holder().to_string();
                let mark = r.snapshot().barrier.filter(|b| b.gateway != me);
                hold = match (hold, mark) {
                    (Some(h), Some(m)) if h.move_id == m.move_id => Some(h),
                    (old, Some(m)) => {
                        drop(old);
                        log::info!(
                            "rebalance: gateway {} holds the writes for move {}: held here too",
                            m.gateway,
                            m.move_id
                        );
                        Some(Hold::take(r.fleet.clone(), m.move_id).await)
                    }
                    (_, None) => None,
                };
                let version = r.version();
                if acked != Some(version) {
                    if hold.is_none() {
                        // Writes that took an older snapshot have reached their nodes.
                        drop(r.fleet.writes.close().await);
                    }
                    if let Some(before) = before {
                        super::mover::wait_for_readers(before, r.fleet.reads.deadline).await;
                    }
                    let said = r
                        .tasks
                        .state()
                        .and_then(|s| s.ack_doc(Doc::Placement, &me, version));
                    if said.is_ok() {
                        acked = Some(version);
                    }
                }
            }
            // Writes held stay held: the owner may have changed meanwhile.
            Err(e) if !down => {
                log::warn!("rebalance: {e}; following the shared placement again when it answers");
                down = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(WATCH_PERIOD).await;
    }
}

/// This gateway's writes held for another gateway's barrier, until dropped.
struct Hold {
    move_id: u64,
    _release: oneshot::Sender<()>,
}

impl Hold {
    /// Closes the write gate (once the writes in flight are done) and keeps it closed.
    async fn take(fleet: Arc<Fleet>, move_id: u64) -> Hold {
        let (closed, is_closed) = oneshot::channel();
        let (release, released) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _closed = fleet.writes.close().await;
            let _ = closed.send(());
            // Ends when the `Hold` is dropped.
            let _ = released.await;
        });
        let _ = is_closed.await;
        Hold {
            move_id,
            _release: release,
        }
    }
}
