//! Online rebalancing: when the configuration's nodes change, the shards whose owner changes
//! move one by one, online, and nothing else moves.
//!
//! The [`Rebalancer`] owns the durable [`state::State`] (effective placement and moves),
//! publishes the topology every request uses, and drives the moves ([`mover`]). A move of
//! shard `s` from `A` to `B`: writes to `s` keep going to `A` and are also recorded for `B`;
//! `s` is copied from `A` (node to node with `/export`, or through the gateway); the recorded
//! writes are replayed to `B`; writes are held for the moment it takes to replay the last
//! ones and check both nodes hold the same documents of `s`; the owner changes (one atomic
//! write of the state file); then `s` is deleted from `A`.

mod copy;
pub mod gate;
pub mod mover;
pub mod nodes;
pub mod plan;
pub mod preview;
pub mod state;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::{Config, NodeSpec, RebalanceSettings};
use crate::fleet::Fleet;
use crate::placement::Placement;
use crate::tasks::aggregate::now_rfc3339;
use crate::tasks::TaskService;
use crate::topology::Topology;
use plan::PlannedMove;
use state::{Move, Phase, State};

/// Reads the state in `data_dir`, or starts one from the rendezvous placement of `config`
/// (how every cluster was placed before placements were kept), and checks it fits `config`.
pub fn load_state(config: &Config) -> Result<State, String> {
    let dir = &config.server.data_dir;
    let state = match State::read(dir)? {
        Some(state) => state,
        None => State::new(Placement::rendezvous(&config.cluster, &config.nodes)),
    };
    let p = &state.placement;
    if p.shards != config.cluster.shards {
        return Err(format!(
            "`cluster.shards` is {} but the placement in {} has {} shards; resharding is not supported",
            config.cluster.shards,
            dir.display(),
            p.shards
        ));
    }
    if p.replication_factor != config.cluster.replication_factor {
        return Err(format!(
            "`cluster.replication_factor` is {} but the placement in {} has {}; changing it online is not supported",
            config.cluster.replication_factor,
            dir.display(),
            p.replication_factor
        ));
    }
    Ok(state)
}

/// The placement once every active move is done.
pub fn projected(state: &State) -> Placement {
    let mut p = state.placement.clone();
    for m in state.active() {
        if let Some(g) = p.group(&m.group) {
            p.set_owner(m.shard, g, m.slot, &m.to);
        }
    }
    p
}

/// The start of the refusal to plan moves while other gateways share the state.
pub const PEERS_REFUSAL: &str = "shards are not moved while other gateways run";

/// The moves a change to `desired` starts: none if the nodes are the same ones (a running
/// cluster is never reshuffled by a restart or a reload that changes nothing), else a
/// balanced plan from where the running moves lead. `force` balances anyway.
pub fn replan(
    state: &State,
    desired: &[NodeSpec],
    force: bool,
) -> Result<Vec<PlannedMove>, String> {
    let target = projected(state);
    let mut placed: Vec<&str> = target.counts().keys().copied().collect();
    placed.sort_unstable();
    let mut wanted: Vec<&str> = desired.iter().map(|n| n.id.as_str()).collect();
    wanted.sort_unstable();
    if placed == wanted && !force {
        return Ok(Vec::new());
    }
    plan::plan(&target, desired)
}

/// Owns the effective placement and the moves, and publishes the topology.
pub struct Rebalancer {
    data_dir: PathBuf,
    state: Mutex<State>,
    desired: Mutex<Vec<NodeSpec>>,
    pub fleet: Arc<Fleet>,
    pub tasks: Arc<TaskService>,
    pub settings: RebalanceSettings,
    wake: tokio::sync::Notify,
    /// Sources that refused `/export`: copied through the gateway from then on.
    pub no_export: Mutex<BTreeSet<String>>,
    /// (source, target) pairs whose export was probed and works.
    pub export_ok: Mutex<BTreeSet<(String, String)>>,
}

impl Rebalancer {
    pub fn new(
        config: &Config,
        state: State,
        fleet: Arc<Fleet>,
        tasks: Arc<TaskService>,
    ) -> Rebalancer {
        Rebalancer {
            data_dir: config.server.data_dir.clone(),
            state: Mutex::new(state),
            desired: Mutex::new(config.nodes.clone()),
            fleet,
            tasks,
            settings: config.rebalance,
            wake: tokio::sync::Notify::new(),
            no_export: Mutex::new(BTreeSet::new()),
            export_ok: Mutex::new(BTreeSet::new()),
        }
    }

    /// The topology of `state` over `desired`.
    pub fn topology(state: &State, desired: &[NodeSpec], generation: u64) -> Topology {
        let unsettled = state.busy_nodes();
        Topology::build(
            &state.placement,
            desired,
            &state.recorders(),
            &unsettled,
            generation,
        )
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The topology the configuration desires, as gateways sharing a store compare it.
    pub fn desired_fingerprint(&self) -> String {
        let t = self.fleet.topology.snapshot();
        crate::state::peers::fingerprint(t.shards, t.replication_factor, &self.desired())
    }

    fn desired(&self) -> Vec<NodeSpec> {
        self.desired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Persists `state` (keeping the address of every node still needed) and publishes its
    /// topology; requests already running keep the snapshot they hold.
    pub fn commit(&self, state: &mut State) -> Result<(), String> {
        let desired = self.desired();
        let mut keep = state.busy_nodes();
        keep.extend(self.tasks.nodes_awaited());
        state.placement.refresh_nodes(&desired, &keep);
        state.trim();
        state.write(&self.data_dir)?;
        let store = &self.fleet.topology;
        let current = store.snapshot();
        let next = Rebalancer::topology(state, &desired, current.generation + 1);
        let generation = if next.same_as(&current) {
            current.generation
        } else {
            store.swap(next);
            current.generation + 1
        };
        self.observe(state, generation);
        Ok(())
    }

    fn observe(&self, state: &State, generation: u64) {
        let m = &self.fleet.metrics;
        m.topology_generation.set(generation as i64);
        m.placement_epoch.set(state.placement.epoch as i64);
        for phase in Phase::ALL {
            let n = state.moves.iter().filter(|m| m.phase == phase).count();
            m.rebalance_moves
                .with_label_values(&[phase.name()])
                .set(n as i64);
        }
    }

    /// Applies a new configuration's nodes: replaces the moves not yet started by a plan
    /// towards them. The summary of the plan, or why the configuration is refused.
    pub fn reconfigure(&self, nodes: &[NodeSpec], force: bool) -> Result<String, String> {
        let mut state = self.lock();
        let mut draft = state.clone();
        draft.moves.retain(|m| m.phase != Phase::Pending);
        let planned = replan(&draft, nodes, force)?;
        if !planned.is_empty() {
            let t = self.fleet.topology.snapshot();
            let wanted = crate::state::peers::fingerprint(t.shards, t.replication_factor, nodes);
            // Unknown (the store is down): assume others run rather than move shards under them.
            let others = match self.tasks.live_peers(&wanted) {
                Ok(0) => None,
                Ok(n) => Some(n.to_string()),
                Err(_) => Some("maybe some".to_string()),
            };
            if let Some(others) = others {
                return Err(format!(
                    "{PEERS_REFUSAL}: {others} other gateway(s) share this gateway's state and are running; moving shards while they route writes by the old placement would lose writes. Stop them, rebalance through this gateway, then copy its data_dir/placement.json to them before starting them with the new [[nodes]]"
                ));
            }
        }
        for p in &planned {
            let id = draft.next_move;
            draft.next_move += 1;
            draft.moves.push(Move {
                id,
                shard: p.shard,
                group: p.group.clone(),
                slot: p.slot,
                from: p.from.clone(),
                to: p.to.clone(),
                phase: Phase::Pending,
                source: None,
                via: None,
                copied_documents: 0,
                attempts: 0,
                last_error: None,
                enqueued_at: now_rfc3339(),
                started_at: None,
                finished_at: None,
                barrier_ms: None,
                canceling: false,
            });
        }
        let dropped = state
            .moves
            .iter()
            .filter(|m| m.phase == Phase::Pending)
            .count();
        *self.desired.lock().unwrap_or_else(|p| p.into_inner()) = nodes.to_vec();
        self.commit(&mut draft)?;
        *state = draft;
        drop(state);
        self.wake.notify_one();
        let summary = format!(
            "{} moves planned{}",
            planned.len(),
            if dropped > 0 {
                format!(", replacing {dropped} not started")
            } else {
                String::new()
            }
        );
        log::info!("rebalance: {summary}");
        Ok(summary)
    }

    /// Balances the configured nodes even if none changed (a cluster placed by rendezvous
    /// before placements were kept).
    pub fn balance(&self) -> Result<String, String> {
        let desired = self.desired();
        self.reconfigure(&desired, true)
    }

    /// Publishes the loaded state at start.
    pub fn start(&self) -> Result<(), String> {
        let mut state = self.lock().clone();
        self.commit(&mut state)?;
        *self.lock() = state;
        Ok(())
    }

    /// Pauses or resumes the moves (a move under way stops at its next step).
    pub fn set_paused(&self, paused: bool) -> Result<(), String> {
        let mut state = self.lock();
        let mut draft = state.clone();
        draft.paused = paused;
        self.commit(&mut draft)?;
        *state = draft;
        self.wake.notify_one();
        Ok(())
    }

    /// Cancels the moves that have not changed owner yet; the shards stay where they are.
    /// The ids canceled (their leftovers on the new owners are deleted by the driver).
    pub fn cancel(&self) -> Result<Vec<u64>, String> {
        let mut state = self.lock();
        let mut draft = state.clone();
        let mut canceled = Vec::new();
        for m in draft.moves.iter_mut() {
            match m.phase {
                Phase::Pending => {
                    m.phase = Phase::Canceled;
                    m.finished_at = Some(now_rfc3339());
                }
                // The driver deletes what reached the new owner, then ends it.
                Phase::Copying | Phase::Replaying => m.canceling = true,
                _ => continue,
            }
            canceled.push(m.id);
        }
        self.commit(&mut draft)?;
        *state = draft;
        drop(state);
        self.wake.notify_one();
        Ok(canceled)
    }

    /// Drops nodes that left the fleet once nothing waits on them any more.
    pub fn tidy(&self) -> Result<(), String> {
        let topology = self.fleet.topology.snapshot();
        let mut state = self.lock();
        let mut keep: BTreeSet<String> = state.busy_nodes().into_iter().collect();
        keep.extend(self.tasks.nodes_awaited());
        let idle = |n: &crate::topology::Node| n.draining && !keep.contains(&n.id);
        let droppable = topology
            .nodes
            .iter()
            .enumerate()
            .any(|(i, n)| idle(n) && !topology.serves(i));
        if !droppable {
            return Ok(());
        }
        let mut draft = state.clone();
        self.commit(&mut draft)?;
        *state = draft;
        Ok(())
    }

    /// Wakes the driver early.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Waits for a wake-up or `within`.
    pub async fn idle(&self, within: std::time::Duration) {
        let _ = tokio::time::timeout(within, self.wake.notified()).await;
    }

    /// A snapshot of the state, for the admin API.
    pub fn snapshot(&self) -> State {
        self.lock().clone()
    }

    /// Updates one move in the state, persists and publishes.
    pub fn update(&self, id: u64, change: impl FnOnce(&mut State, usize)) -> Result<(), String> {
        let mut state = self.lock();
        let mut draft = state.clone();
        let Some(i) = draft.moves.iter().position(|m| m.id == id) else {
            return Err(format!("move {id} is gone"));
        };
        change(&mut draft, i);
        self.commit(&mut draft)?;
        *state = draft;
        Ok(())
    }
}
