//! The background task refresher: asks the nodes about tasks still in progress, so their
//! views (and `GET /tasks` filters on status) stay current without a client asking, and
//! replays the writes lagging nodes missed. `crate::server` runs [`round`] every [`PERIOD`].

use std::time::Duration;

use super::TaskService;
use crate::fleet::Fleet;

/// How often tasks in progress are polled.
pub const PERIOD: Duration = Duration::from_millis(500);

/// Rounds between two anti-entropy passes over index metadata (about 30 s).
const REPAIR_EVERY: u64 = 60;

/// Round `n`: refresh pending tasks, replay hints, publish lag and store gauges; every
/// [`REPAIR_EVERY`] rounds, repair indexes missing on some nodes.
pub async fn round(fleet: &Fleet, tasks: &TaskService, n: u64) {
    let topology = fleet.topology.snapshot();
    let cluster = fleet.cluster(&topology);
    // With a shared store, one gateway polls, replays and prunes for all; the others only
    // forget the tasks it saw finish.
    if tasks.leads_background() {
        tokio::join!(
            tasks.refresh_pending(&cluster),
            tasks.replay_hints(&cluster)
        );
        tasks.prune(&cluster).await;
        if n % REPAIR_EVERY == REPAIR_EVERY - 1 {
            tasks.repair_indexes(&cluster).await;
            tasks.recover_stopped_gateways_writes();
        }
    } else {
        tasks.forget_finished();
    }
    tasks.sync_lagging();
    fleet.health.set_lagging(tasks.lagging_nodes());
    let metrics = &fleet.metrics;
    metrics.task_store_tasks.set(tasks.count() as i64);
    let hints = tasks.hint_counts();
    for node in &topology.nodes {
        let n = hints.get(&node.id).copied().unwrap_or(0);
        metrics
            .hints_pending
            .with_label_values(&[node.id.as_str()])
            .set(n as i64);
    }
}
