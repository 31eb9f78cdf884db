//! The rebalance's durable state: the effective placement and every move with its phase, in
//! one JSON file of the data directory, replaced atomically (write, fsync, rename), so a
//! change of owner and the phase that follows it are one step, and tools can read it while
//! the gateway runs.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::NodeSpec;
use crate::placement::Placement;

/// Where a move is. Writes to the shard are recorded for the new owner in `Copying` and
/// `Replaying`; the owner changes at the end of `Replaying`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    Pending,
    Copying,
    Replaying,
    Cleanup,
    Done,
    Canceled,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Copying => "copying",
            Phase::Replaying => "replaying",
            Phase::Cleanup => "cleanup",
            Phase::Done => "done",
            Phase::Canceled => "canceled",
        }
    }

    pub const ALL: [Phase; 6] = [
        Phase::Pending,
        Phase::Copying,
        Phase::Replaying,
        Phase::Cleanup,
        Phase::Done,
        Phase::Canceled,
    ];

    /// Writes to the shard are recorded for the new owner.
    pub fn records(self) -> bool {
        matches!(self, Phase::Copying | Phase::Replaying)
    }

    /// Still to do (finished and canceled moves are history).
    pub fn active(self) -> bool {
        !matches!(self, Phase::Done | Phase::Canceled)
    }
}

/// One shard slot changing owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Move {
    pub id: u64,
    pub shard: u32,
    pub group: String,
    pub slot: usize,
    pub from: String,
    pub to: String,
    pub phase: Phase,
    /// The node the documents came from (`from`, or another replica if it is down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `export` (node to node) or `gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    #[serde(default)]
    pub copied_documents: u64,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub enqueued_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// How long writes were held while the owner changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub barrier_ms: Option<u64>,
    /// Canceled while under way: what reached `to` is deleted before it ends.
    #[serde(default)]
    pub canceling: bool,
}

impl Move {
    /// A move just planned.
    pub fn planned(id: u64, p: &super::plan::PlannedMove) -> Move {
        Move {
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
            enqueued_at: crate::tasks::aggregate::now_rfc3339(),
            started_at: None,
            finished_at: None,
            barrier_ms: None,
            canceling: false,
        }
    }
}

/// Moves kept after they end, for the admin API.
const HISTORY: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub placement: Placement,
    pub moves: Vec<Move>,
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub next_move: u64,
    /// The nodes the cluster should have, when gateways share the state: the last
    /// configuration applied by any of them (each gateway's own `[[nodes]]` otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub desired: Vec<DesiredNode>,
    /// Set while a gateway holds writes to change a shard's owner: every other gateway holds
    /// its writes too until it is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub barrier: Option<BarrierMark>,
}

/// A node of the desired configuration, as gateways sharing the state agree on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredNode {
    pub id: String,
    pub url: String,
    pub group: String,
    pub weight: u32,
}

impl DesiredNode {
    pub fn of(spec: &NodeSpec) -> DesiredNode {
        DesiredNode {
            id: spec.id.clone(),
            url: spec.url.clone(),
            group: spec.group.clone(),
            weight: spec.weight,
        }
    }

    /// The node as configured, if its address is usable here.
    pub fn spec(&self) -> Option<NodeSpec> {
        let (authority, addr) = crate::config::node_address(&self.url).ok()?;
        Some(NodeSpec {
            id: self.id.clone(),
            url: self.url.clone(),
            authority,
            addr,
            group: self.group.clone(),
            weight: self.weight,
        })
    }
}

/// Which move's barrier holds the writes, and which gateway drives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BarrierMark {
    pub move_id: u64,
    pub gateway: String,
}

impl State {
    pub fn new(placement: Placement) -> State {
        State {
            placement,
            moves: Vec::new(),
            paused: false,
            next_move: 0,
            desired: Vec::new(),
            barrier: None,
        }
    }

    /// The file in `data_dir`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("placement.json")
    }

    /// The state in `data_dir`, if any.
    pub fn read(data_dir: &Path) -> Result<Option<State>, String> {
        let path = State::path(data_dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Replaces the file atomically and durably.
    pub fn write(&self, data_dir: &Path) -> Result<(), String> {
        let path = State::path(data_dir);
        let tmp = data_dir.join("placement.json.tmp");
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        let io = |e: std::io::Error| format!("{}: {e}", tmp.display());
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Ok(dir) = std::fs::File::open(data_dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// Moves still to do.
    pub fn active(&self) -> impl Iterator<Item = &Move> {
        self.moves.iter().filter(|m| m.phase.active())
    }

    /// Drops the oldest ended moves beyond the history bound.
    pub fn trim(&mut self) {
        let ended = self.moves.iter().filter(|m| !m.phase.active()).count();
        let mut extra = ended.saturating_sub(HISTORY);
        self.moves.retain(|m| {
            if extra > 0 && !m.phase.active() {
                extra -= 1;
                false
            } else {
                true
            }
        });
    }

    /// Nodes a move still needs to reach, besides the placement's owners.
    pub fn busy_nodes(&self) -> Vec<String> {
        self.active()
            .flat_map(|m| [m.from.clone(), m.to.clone()])
            .collect()
    }

    /// `(move id, shard, node)` of every shard recorded for its next owner.
    pub fn recorders(&self) -> Vec<(u64, u32, String)> {
        self.moves
            .iter()
            .filter(|m| m.phase.records())
            .map(|m| (m.id, m.shard, m.to.clone()))
            .collect()
    }
}
