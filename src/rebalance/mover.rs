//! The steps of one move, each ending in a persisted phase, so a gateway killed at any point
//! resumes where the state file says: a copy starts again from a clean target, a replay goes
//! on from the first write not yet acknowledged, a cleanup is done again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::copy::{clear, copy_through_gateway, export, prepare_index};
use super::nodes::NodeApi;
use super::shared::CONFIRM_WITHIN;
use super::state::{Move, Phase, State};
use super::Rebalancer;
use crate::config::CopyMode;
use crate::tasks::aggregate::now_rfc3339;
use crate::tasks::handoff;
use crate::topology::{Node, Topology};

/// Recorded writes replayed per read of the log.
const REPLAY_BATCH: usize = 200;
/// How long the nodes get to process their queues before a barrier.
const CATCH_UP: Duration = Duration::from_secs(300);
/// Below this many recorded writes left, the move takes the barrier and changes owner.
const BARRIER_BACKLOG: u64 = 100;

/// The moves to start now, besides `running` (ids and their nodes): cancelations first
/// (even while paused), then moves under way (after a restart too), then planned ones; at
/// most `max` running in all, and never two on one node (one copy at a time per source and
/// per target).
pub fn pick(r: &Rebalancer, running: &[(u64, [String; 2])], max: usize) -> Vec<Move> {
    choose(&r.snapshot(), running, max)
}

fn choose(state: &super::state::State, running: &[(u64, [String; 2])], max: usize) -> Vec<Move> {
    let mut busy: Vec<&String> = running.iter().flat_map(|(_, nodes)| nodes).collect();
    let mut out: Vec<Move> = Vec::new();
    let order = |m: &Move| (!m.canceling, m.phase == Phase::Pending, m.id);
    let mut candidates: Vec<&Move> = state.active().collect();
    candidates.sort_by_key(|m| order(m));
    for m in candidates {
        if running.len() + out.len() >= max {
            break;
        }
        let skip = running.iter().any(|(id, _)| *id == m.id)
            || (state.paused && !m.canceling)
            || busy.contains(&&m.from)
            || busy.contains(&&m.to);
        if skip {
            continue;
        }
        out.push(m.clone());
        busy.extend([&m.from, &m.to]);
    }
    out
}

/// Drives one move phase by phase until it ends, the rebalance is paused, or it is gone.
pub async fn run(r: Arc<Rebalancer>, id: u64) {
    loop {
        if !r.driving() {
            break;
        }
        let state = r.snapshot();
        let Some(m) = state.active().find(|m| m.id == id).cloned() else {
            break;
        };
        if state.paused && !m.canceling {
            break;
        }
        if let Err(e) = advance(&r, &m).await {
            log::warn!(
                "rebalance: move {} (shard {} of group {}, {} -> {}) {}: {e}; retrying",
                m.id,
                m.shard,
                m.group,
                m.from,
                m.to,
                m.phase.name()
            );
            let attempts = m.attempts + 1;
            let _ = r.update(m.id, |s, i| {
                s.moves[i].attempts = attempts;
                s.moves[i].last_error = Some(e.clone());
            });
            tokio::time::sleep(Duration::from_millis(250 * u64::from(attempts.min(20)))).await;
        }
    }
    r.wake();
}

async fn advance(r: &Rebalancer, m: &Move) -> Result<(), String> {
    if m.canceling {
        return cancel(r, m).await;
    }
    match m.phase {
        Phase::Pending => {
            log::info!(
                "rebalance: move {}: shard {} of group {} from {} to {}: recording its writes",
                m.id,
                m.shard,
                m.group,
                m.from,
                m.to
            );
            // Writes held everywhere while recording starts: none runs unrecorded once
            // the first one is recorded.
            let held = r.hold_everywhere(m.id, r.settings.barrier_timeout).await?;
            held.commit(|s| {
                let mv = in_phase(s, m.id, Phase::Pending)?;
                mv.phase = Phase::Copying;
                mv.started_at = Some(now_rfc3339());
                Ok(())
            })
        }
        Phase::Copying => copy(r, m).await,
        Phase::Replaying => {
            {
                // Not held into the barrier: it waits for every holder of the old snapshot.
                let topology = r.fleet.topology.snapshot();
                let dst = NodeApi::of(&r.fleet, node(&topology, &m.to)?);
                let source = m.source.clone().unwrap_or_else(|| m.from.clone());
                let src = NodeApi::of(&r.fleet, node(&topology, &source)?);
                replay(r, m, &dst, Some(BARRIER_BACKLOG)).await?;
                // Both nodes caught up before writes are held, so the barrier only waits
                // for the last few.
                dst.drain(dst.latest_task().await?, CATCH_UP).await?;
                src.drain(src.latest_task().await?, CATCH_UP).await?;
                replay(r, m, &dst, Some(BARRIER_BACKLOG)).await?;
            }
            barrier(r, m).await
        }
        Phase::Cleanup => cleanup(r, m).await,
        Phase::Done | Phase::Canceled => Ok(()),
    }
}

fn node<'t>(topology: &'t Topology, id: &str) -> Result<&'t Node, String> {
    topology
        .node_by_id(id)
        .map(|i| &topology.nodes[i])
        .ok_or_else(|| format!("node {id} is not in the topology"))
}

/// The node to copy from: the old owner, or another holder of the shard if it is down or
/// behind on writes it missed.
fn source<'t>(r: &Rebalancer, topology: &'t Topology, m: &Move) -> Result<&'t Node, String> {
    let state = r.snapshot();
    let p = &state.placement;
    let mut candidates = vec![m.from.clone()];
    for g in 0..p.groups.len() {
        candidates.extend(p.owners_in_group(m.shard, g).iter().cloned());
    }
    let good = |id: &String| {
        let node = node(topology, id).ok()?;
        let fit = *id != m.to && r.fleet.health.is_up(node) && !r.tasks.is_lagging(id);
        fit.then_some(node)
    };
    candidates.iter().find_map(good).ok_or_else(|| {
        format!(
            "no reachable, caught-up copy of shard {} (waiting for {} or a replica to return)",
            m.shard, m.from
        )
    })
}

/// Indexes and settings on the target, the target cleared of the shard, then the copy.
async fn copy(r: &Rebalancer, m: &Move) -> Result<(), String> {
    // Every gateway records the shard's writes before any is copied.
    r.confirm(CONFIRM_WITHIN).await?;
    // Nodes copied out: a snapshot held for the whole copy would delay other moves'
    // cleanups, which wait for old snapshots to go.
    let (source, target) = {
        let topology = r.fleet.topology.snapshot();
        let source = source(r, &topology, m)?.clone();
        (source, node(&topology, &m.to)?.clone())
    };
    let (source, target) = (&source, &target);
    let src = NodeApi::of(&r.fleet, source);
    let dst = NodeApi::of(&r.fleet, target);
    let indexes = src.indexes().await?;
    // In the order of client writes: a settings change sent after this reaches the target
    // after it, never before.
    let mut tasks = Vec::new();
    {
        let _closed = r.fleet.writes.close().await;
        for (uid, primary_key) in &indexes {
            tasks.extend(prepare_index(&src, &dst, uid, primary_key.as_deref()).await?);
        }
    }
    for (uid, must_succeed) in tasks {
        match dst.wait(uid).await {
            Err(e) if must_succeed => return Err(e),
            _ => {}
        }
    }
    // Leftovers of an earlier attempt would be counted with the copy.
    clear(&dst, &indexes, m.shard).await?;
    let started = Instant::now();
    let refused = r
        .no_export
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&source.id);
    let mut via = "gateway";
    let mut copied = None;
    if r.settings.copy == CopyMode::Auto && !refused {
        match export(r, &src, &dst, &indexes, m.shard).await {
            Ok(n) => {
                via = "export";
                copied = Some(n);
            }
            Err(e) => {
                log::warn!(
                    "rebalance: node {} cannot export to {} ({e}); copying through the gateway from now on. Nodes export to private and loopback addresses only when started with `--experimental-allowed-ip-networks` covering the other nodes (e.g. 10.0.0.0/8 or 127.0.0.0/8).",
                    source.id,
                    target.id
                );
                r.no_export
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(source.id.clone());
                clear(&dst, &indexes, m.shard).await?;
            }
        }
    }
    let copied = match copied {
        Some(n) => n,
        None => copy_through_gateway(r, &src, &dst, &indexes, m.shard).await?,
    };
    r.fleet
        .metrics
        .rebalance_documents
        .with_label_values(&[via])
        .inc_by(copied);
    log::info!(
        "rebalance: move {}: shard {} copied from {} to {} via {via}: {copied} documents in {:.1} s",
        m.id,
        m.shard,
        source.id,
        target.id,
        started.elapsed().as_secs_f64()
    );
    let source_id = source.id.clone();
    r.transact(|s| {
        let mv = in_phase(s, m.id, Phase::Copying)?;
        mv.phase = Phase::Replaying;
        mv.source = Some(source_id.clone());
        mv.via = Some(via.to_string());
        mv.copied_documents = copied;
        mv.last_error = None;
        Ok(())
    })
}

/// Replays the recorded writes to the target in order, until fewer than `until` are left
/// (all of them for `None`); the target's last task uid.
async fn replay(
    r: &Rebalancer,
    m: &Move,
    dst: &NodeApi<'_>,
    until: Option<u64>,
) -> Result<Option<u64>, String> {
    let mut last = None;
    loop {
        if let Some(until) = until {
            if r.tasks.move_log_len(m.id).map_err(|e| e.to_string())? < until {
                return Ok(last);
            }
        }
        let batch = r
            .tasks
            .move_log(m.id, REPLAY_BATCH)
            .map_err(|e| e.to_string())?;
        if batch.is_empty() {
            return Ok(last);
        }
        for (key, bytes) in batch {
            let Some((req, _)) = handoff::decode_for(&bytes) else {
                log::error!(
                    "rebalance: move {}: unreadable recorded write dropped",
                    m.id
                );
                r.tasks
                    .move_log_drop(m.id, Some(key))
                    .map_err(|e| e.to_string())?;
                continue;
            };
            let (status, answer) = dst.send(req).await?;
            if status >= 500 {
                return Err(format!(
                    "node {} refused a recorded write with {status}: {}",
                    dst.node.id, answer["message"]
                ));
            }
            // A client error is what the old owner answered too: nothing to apply.
            if let Some(uid) = answer["taskUid"].as_u64() {
                last = Some(uid);
            }
            r.tasks
                .move_log_drop(m.id, Some(key))
                .map_err(|e| e.to_string())?;
            r.fleet.metrics.rebalance_replayed.inc();
        }
    }
}

/// Holds writes, replays the last recorded ones, checks the target holds exactly the
/// source's documents of the shard, and changes the owner; then waits for reads that
/// started on the old placement before the old copy may go.
async fn barrier(r: &Rebalancer, m: &Move) -> Result<(), String> {
    let budget = r.settings.barrier_timeout;
    let topology = r.fleet.topology.snapshot();
    let source_id = m.source.clone().unwrap_or_else(|| m.from.clone());
    let src = NodeApi::of(&r.fleet, node(&topology, &source_id)?);
    let dst = NodeApi::of(&r.fleet, node(&topology, &m.to)?);
    let held = r.hold_everywhere(m.id, budget).await?;
    let started = held.started;
    let settle = async {
        replay(r, m, &dst, None).await?;
        dst.drain(dst.latest_task().await?, budget).await?;
        src.drain(src.latest_task().await?, budget).await?;
        for (uid, _) in src.indexes().await? {
            let want = src.count(&uid, m.shard).await?;
            let have = if dst.has_index(&uid).await? {
                dst.count(&uid, m.shard).await?
            } else {
                0
            };
            if want != have {
                return Err(Mismatch(format!(
                    "index {uid}: {} holds {want} documents of shard {}, {} holds {have}",
                    src.node.id, m.shard, dst.node.id
                )));
            }
        }
        Ok(())
    };
    let settled = match tokio::time::timeout(budget.saturating_sub(started.elapsed()), settle).await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Mismatch::not(
            "the last writes took longer than the barrier allows",
        )),
    };
    if let Err(Mismatch(e)) = settled {
        drop(held);
        if e.starts_with("index ") {
            // Copy again, from a clean target.
            let _ = r.transact(|s| {
                in_phase(s, m.id, Phase::Replaying)?.phase = Phase::Copying;
                Ok(())
            });
        }
        return Err(e);
    }
    // `src` and `dst` borrow it; none may outlive this point.
    let _ = (src, dst);
    drop(topology);
    let before = r.fleet.topology.snapshot();
    let took = started.elapsed();
    held.commit(|s| {
        let mv = in_phase(s, m.id, Phase::Replaying)?;
        mv.phase = Phase::Cleanup;
        mv.barrier_ms = Some(took.as_millis() as u64);
        mv.last_error = None;
        if let Some(g) = s.placement.group(&m.group) {
            s.placement.set_owner(m.shard, g, m.slot, &m.to);
        }
        s.placement.epoch += 1;
        Ok(())
    })?;
    r.fleet
        .metrics
        .rebalance_barrier_seconds
        .observe(took.as_secs_f64());
    log::info!(
        "rebalance: move {}: shard {} of group {} now on {} (writes held {} ms)",
        m.id,
        m.shard,
        m.group,
        m.to,
        took.as_millis()
    );
    wait_for_readers(before, r.fleet.reads.deadline).await;
    Ok(())
}

/// Move `id` of `state`, if it is still in `phase` and not being canceled: a step decided on
/// an earlier state (another gateway may have canceled it) changes nothing otherwise.
fn in_phase(state: &mut State, id: u64, phase: Phase) -> Result<&mut Move, String> {
    match state.moves.iter_mut().find(|m| m.id == id) {
        Some(m) if m.phase == phase && !m.canceling => Ok(m),
        Some(m) => Err(format!(
            "move {id} is {}{} now",
            m.phase.name(),
            if m.canceling { ", being canceled" } else { "" }
        )),
        None => Err(format!("move {id} is gone")),
    }
}

/// Why a barrier ended without a change of owner.
struct Mismatch(String);

impl Mismatch {
    fn not(why: &str) -> Mismatch {
        Mismatch(why.to_string())
    }
}

impl From<String> for Mismatch {
    fn from(e: String) -> Self {
        Mismatch(format!("barrier: {e}"))
    }
}

/// Waits until no request holds `before` (the placement before a change of owner), at most
/// `within` (a read's deadline).
pub(super) async fn wait_for_readers(before: Arc<Topology>, within: Duration) {
    let deadline = Instant::now() + within;
    while Arc::strong_count(&before) > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Deletes the shard from its old owner (when it still exists), and ends the move.
async fn cleanup(r: &Rebalancer, m: &Move) -> Result<(), String> {
    // Every gateway routes by the new owner, and its reads of the old one are done.
    r.confirm(CONFIRM_WITHIN).await?;
    let topology = r.fleet.topology.snapshot();
    if let Ok(old) = node(&topology, &m.from) {
        let api = NodeApi::of(&r.fleet, old);
        let result = match api.indexes().await {
            Ok(indexes) => clear(&api, &indexes, m.shard).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            if !old.draining {
                return Err(e);
            }
            log::warn!(
                "rebalance: move {}: {} leaves the fleet without its copy of shard {} deleted: {e}",
                m.id,
                m.from,
                m.shard
            );
        }
    }
    r.transact(|s| {
        let mv = in_phase(s, m.id, Phase::Cleanup)?;
        mv.phase = Phase::Done;
        mv.finished_at = Some(now_rfc3339());
        Ok(())
    })?;
    if let Some(secs) = m.started_at.as_deref().and_then(seconds_since) {
        r.fleet.metrics.rebalance_move_seconds.observe(secs);
    }
    Ok(())
}

/// Seconds from an RFC 3339 time to now.
fn seconds_since(at: &str) -> Option<f64> {
    let then =
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()?;
    Some((time::OffsetDateTime::now_utc() - then).as_seconds_f64())
}

/// Ends a canceled move: what reached the new owner is deleted, the record forgotten.
async fn cancel(r: &Rebalancer, m: &Move) -> Result<(), String> {
    let topology = r.fleet.topology.snapshot();
    if let Ok(target) = node(&topology, &m.to) {
        let api = NodeApi::of(&r.fleet, target);
        let indexes = api.indexes().await?;
        clear(&api, &indexes, m.shard).await?;
    }
    r.tasks
        .move_log_drop(m.id, None)
        .map_err(|e| e.to_string())?;
    r.update(m.id, |s, i| {
        s.moves[i].phase = Phase::Canceled;
        s.moves[i].canceling = false;
        s.moves[i].finished_at = Some(now_rfc3339());
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClusterSpec, NodeSpec};
    use crate::placement::Placement;
    use crate::rebalance::state::State;

    fn mv(id: u64, from: &str, to: &str, phase: Phase) -> Move {
        Move {
            id,
            shard: id as u32,
            group: "g".into(),
            slot: 0,
            from: from.into(),
            to: to.into(),
            phase,
            source: None,
            via: None,
            copied_documents: 0,
            attempts: 0,
            last_error: None,
            enqueued_at: String::new(),
            started_at: None,
            finished_at: None,
            barrier_ms: None,
            canceling: false,
        }
    }

    fn state(moves: Vec<Move>) -> State {
        let specs: Vec<NodeSpec> = Vec::new();
        let cluster = ClusterSpec {
            shards: 8,
            replication_factor: 1,
        };
        let mut s = State::new(Placement::rendezvous(&cluster, &specs));
        s.moves = moves;
        s
    }

    fn ids(moves: &[Move]) -> Vec<u64> {
        moves.iter().map(|m| m.id).collect()
    }

    #[test]
    fn one_copy_at_a_time_per_node_moves_under_way_first() {
        let s = state(vec![
            mv(0, "a", "d", Phase::Pending),
            mv(1, "b", "d", Phase::Pending),
            mv(2, "b", "e", Phase::Copying),
            mv(3, "c", "f", Phase::Pending),
            mv(4, "x", "y", Phase::Done),
        ]);
        // Move 2 is under way: it goes first and takes b; d goes to move 0; 1 waits.
        assert_eq!(ids(&choose(&s, &[], 4)), [2, 0, 3]);
        assert_eq!(ids(&choose(&s, &[], 1)), [2]);
        let running = [(2, ["b".to_string(), "e".to_string()])];
        assert_eq!(ids(&choose(&s, &running, 2)), [0]);
    }

    #[test]
    fn paused_moves_wait_but_cancelations_go_on() {
        let mut s = state(vec![
            mv(0, "a", "b", Phase::Replaying),
            mv(1, "c", "d", Phase::Pending),
        ]);
        s.paused = true;
        assert!(choose(&s, &[], 4).is_empty());
        s.moves[0].canceling = true;
        assert_eq!(ids(&choose(&s, &[], 4)), [0]);
    }
}
