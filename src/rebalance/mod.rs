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
pub mod follow;
pub mod gate;
pub mod hold;
pub mod mover;
pub mod nodes;
pub mod plan;
pub mod preview;
pub mod shared;
#[cfg(test)]
mod shared_tests;
pub mod state;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::{Config, NodeSpec, RebalanceSettings};
use crate::fleet::Fleet;
use crate::placement::Placement;
use crate::tasks::aggregate::now_rfc3339;
use crate::tasks::TaskService;
use crate::topology::Topology;
use plan::PlannedMove;
use state::{DesiredNode, Move, Phase, State};

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
    /// Shared with other gateways through the state store (see [`shared`]).
    shared: AtomicBool,
    /// The version of the shared state `state` is.
    version: AtomicU64,
    /// Whether this gateway drives the moves (always, unless the state is shared).
    driving: AtomicBool,
    /// When this gateway last renewed the driver's lease.
    renewed: Mutex<Option<std::time::Instant>>,
    /// Barriers this gateway holds now (see [`hold`]).
    holding: std::sync::atomic::AtomicUsize,
    /// One reload of the shared state at a time.
    reloading: Mutex<()>,
    /// The topology a reload replaced, until `follow` waits for its readers.
    replaced: Mutex<Option<Arc<Topology>>>,
}

impl Rebalancer {
    pub fn new(
        config: &Config,
        state: State,
        fleet: Arc<Fleet>,
        tasks: Arc<TaskService>,
    ) -> Rebalancer {
        let shared = matches!(config.state, crate::config::StateBackend::Redis(_));
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
            shared: AtomicBool::new(shared),
            version: AtomicU64::new(0),
            // A gateway on a shared state drives once it has the lease.
            driving: AtomicBool::new(!shared),
            renewed: Mutex::new(None),
            holding: Default::default(),
            reloading: Mutex::new(()),
            replaced: Mutex::new(None),
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
        crate::state::peers::fingerprint(t.shards, t.replication_factor, &self.configured())
    }

    /// This gateway's configured nodes.
    fn configured(&self) -> Vec<NodeSpec> {
        self.desired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The nodes the cluster should have: the shared state's, when there is one.
    fn desired_of(&self, state: &State) -> Vec<NodeSpec> {
        if state.desired.is_empty() {
            return self.configured();
        }
        state.desired.iter().filter_map(|n| n.spec()).collect()
    }

    /// Persists `state` (keeping the address of every node still needed) and publishes its
    /// topology; requests already running keep the snapshot they hold. With a shared state,
    /// fails with [`shared::CONFLICT`] if another gateway changed it since it was read.
    pub fn commit(&self, state: &mut State) -> Result<(), String> {
        let desired = self.desired_of(state);
        let mut keep = state.busy_nodes();
        keep.extend(self.tasks.nodes_awaited());
        state.placement.refresh_nodes(&desired, &keep);
        state.trim();
        if self.is_shared() {
            self.store_shared(state)?;
        } else {
            state.write(&self.data_dir)?;
        }
        self.publish(state);
        Ok(())
    }

    /// Publishes the topology of `state`; the one it replaced, if it changed.
    fn publish(&self, state: &State) -> Option<Arc<Topology>> {
        let desired = self.desired_of(state);
        let store = &self.fleet.topology;
        let current = store.snapshot();
        let next = Rebalancer::topology(state, &desired, current.generation + 1);
        let (generation, before) = if next.same_as(&current) {
            (current.generation, None)
        } else {
            store.swap(next);
            (current.generation + 1, Some(current))
        };
        self.observe(state, generation);
        before
    }

    /// Applies `change` to the latest state and commits it; again from the latest if another
    /// gateway changed it meanwhile. `change`'s result.
    pub fn transact<T>(
        &self,
        mut change: impl FnMut(&mut State) -> Result<T, String>,
    ) -> Result<T, String> {
        for _ in 0..shared::TRIES {
            let mut state = self.lock();
            let mut draft = state.clone();
            let out = change(&mut draft)?;
            match self.commit(&mut draft) {
                Ok(()) => {
                    *state = draft;
                    return Ok(out);
                }
                Err(e) if e == shared::CONFLICT => {
                    drop(state);
                    self.reload()?;
                }
                Err(e) => return Err(e),
            }
        }
        Err("the placement kept changing through other gateways; try again".into())
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
        let shared = self.is_shared();
        let (planned, dropped) = self.transact(|draft| {
            let dropped = draft
                .moves
                .iter()
                .filter(|m| m.phase == Phase::Pending)
                .count();
            draft.moves.retain(|m| m.phase != Phase::Pending);
            let planned = replan(draft, nodes, force)?;
            for p in &planned {
                let id = draft.next_move;
                draft.next_move += 1;
                draft.moves.push(Move::planned(id, p));
            }
            if shared {
                draft.desired = nodes.iter().map(DesiredNode::of).collect();
            }
            // The commit keeps the addresses of the nodes desired now.
            *self.desired.lock().unwrap_or_else(|p| p.into_inner()) = nodes.to_vec();
            Ok((planned.len(), dropped))
        })?;
        self.wake.notify_one();
        let summary = format!(
            "{planned} moves planned{}",
            if dropped > 0 {
                format!(", replacing {dropped} not started")
            } else {
                String::new()
            }
        );
        log::info!("rebalance: {summary}");
        Ok(summary)
    }

    /// Applies the configuration's nodes at start, unless other gateways sharing the state
    /// desire other nodes: then this one follows theirs and says so (a reload applies its own).
    pub fn reconfigure_at_start(&self, nodes: &[NodeSpec]) -> Result<(), String> {
        let state = self.snapshot();
        if !state.desired.is_empty() {
            let theirs: Vec<DesiredNode> = state.desired.clone();
            let mine: Vec<DesiredNode> = nodes.iter().map(DesiredNode::of).collect();
            if !same_nodes(&theirs, &mine) {
                *self.desired.lock().unwrap_or_else(|p| p.into_inner()) = nodes.to_vec();
                log::error!(
                    "rebalance: this gateway's [[nodes]] differ from the ones the gateways sharing its state applied last ({}); it follows theirs. Reload it (SIGHUP) to make its own the cluster's",
                    theirs.iter().map(|n| n.id.as_str()).collect::<Vec<_>>().join(", ")
                );
                return Ok(());
            }
        }
        self.reconfigure(nodes, false).map(drop)
    }

    /// Balances the configured nodes even if none changed (a cluster placed by rendezvous
    /// before placements were kept).
    pub fn balance(&self) -> Result<String, String> {
        let desired = self.desired_of(&self.snapshot());
        self.reconfigure(&desired, true)
    }

    /// Publishes the loaded state at start: the shared one, when the store is shared.
    pub fn start(&self) -> Result<(), String> {
        if self.join_shared()? {
            return Ok(());
        }
        self.transact(|_| Ok(()))
    }

    /// Pauses or resumes the moves (a move under way stops at its next step).
    pub fn set_paused(&self, paused: bool) -> Result<(), String> {
        self.transact(|draft| {
            draft.paused = paused;
            Ok(())
        })?;
        self.wake.notify_one();
        Ok(())
    }

    /// Cancels the moves that have not changed owner yet; the shards stay where they are.
    /// The ids canceled (their leftovers on the new owners are deleted by the driver).
    pub fn cancel(&self) -> Result<Vec<u64>, String> {
        let canceled = self.transact(|draft| {
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
            Ok(canceled)
        })?;
        self.wake.notify_one();
        Ok(canceled)
    }

    /// Drops nodes that left the fleet once nothing waits on them any more.
    pub fn tidy(&self) -> Result<(), String> {
        let topology = self.fleet.topology.snapshot();
        let state = self.snapshot();
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
        self.transact(|_| Ok(()))
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
    pub fn update(&self, id: u64, change: impl Fn(&mut State, usize)) -> Result<(), String> {
        self.transact(|draft| {
            let Some(i) = draft.moves.iter().position(|m| m.id == id) else {
                return Err(format!("move {id} is gone"));
            };
            change(draft, i);
            Ok(())
        })
    }

    /// Whether the state is shared with other gateways.
    pub fn is_shared(&self) -> bool {
        self.shared.load(Ordering::Acquire)
    }

    /// Whether this gateway drives the moves now.
    pub fn driving(&self) -> bool {
        self.driving.load(Ordering::Acquire)
    }
}

/// Whether two configurations name the same nodes at the same addresses.
fn same_nodes(a: &[DesiredNode], b: &[DesiredNode]) -> bool {
    let key = |n: &DesiredNode| (n.id.clone(), n.url.clone(), n.group.clone(), n.weight);
    let mut a: Vec<_> = a.iter().map(key).collect();
    let mut b: Vec<_> = b.iter().map(key).collect();
    a.sort();
    b.sort();
    a == b
}
