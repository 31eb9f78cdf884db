//! Everything the gateway persists, behind one interface with two backends: the embedded
//! redb file of the data directory (`crate::tasks::TaskStore`, the default) and Redis,
//! shared by several gateways.
//!
//! Every method commits before it returns: a caller answers its client only after that.

#[cfg(test)]
pub(crate) mod contract;
pub mod peers;
pub mod redis;
mod redis_scripts;
#[cfg(test)]
pub(crate) mod redis_tests;

use std::collections::{BTreeMap, HashSet};
use std::sync::RwLockReadGuard;

use crate::tasks::index::TaskIndex;
use crate::tasks::{GatewayTask, StoreError};

/// Round trips to a shared store and their failures (`miroir_state_*`).
#[derive(Clone)]
pub struct StateMetrics {
    pub seconds: prometheus::Histogram,
    pub errors: prometheus::IntCounter,
}

impl StateMetrics {
    /// Made and registered in `metrics`.
    pub fn new(metrics: &crate::metrics::Metrics) -> StateMetrics {
        let seconds = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new(
                "miroir_state_seconds",
                "Round trips to the shared state store (Redis), answered or not.",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
        )
        .expect("valid metric");
        let errors = prometheus::IntCounter::new(
            "miroir_state_errors_total",
            "Round trips to the shared state store that failed or timed out.",
        )
        .expect("valid metric");
        metrics.register(Box::new(seconds.clone()));
        metrics.register(Box::new(errors.clone()));
        StateMetrics { seconds, errors }
    }
}

/// A write recorded for a moving shard's next owner: (move id, intent id, part).
pub type MoveLogKey = (u64, u64, u64);

pub trait StateStore: Send + Sync {
    /// Whether other gateways may use this store too.
    fn shared(&self) -> bool {
        false
    }

    /// Reserves `n` consecutive task uids; the first. A uid is never reserved twice, and a
    /// task is only shown to a client once stored, so a reservation lost in a crash is a gap
    /// no client has seen.
    fn reserve_uids(&self, n: u64) -> Result<u64, StoreError>;
    /// Stores (or replaces) tasks.
    fn put_many(&self, tasks: &[GatewayTask]) -> Result<(), StoreError>;
    fn put(&self, task: &GatewayTask) -> Result<(), StoreError> {
        self.put_many(std::slice::from_ref(task))
    }
    /// Stores a refreshed task only if it is still there (a refresh that read it before a
    /// deletion must not bring it back); it may skip the flush to disk: a view lost in a
    /// crash is asked of the nodes again. Whether this write finished the task (its stored
    /// status went from unfinished to finished): of gateways refreshing one task at once,
    /// one sees it, and that one calls the webhooks.
    fn update(&self, task: &GatewayTask) -> Result<bool, StoreError>;
    fn get(&self, uid: u64) -> Result<Option<GatewayTask>, StoreError>;
    /// The tasks `uids` still stored, in the order given.
    fn tasks(&self, uids: &mut dyn Iterator<Item = u64>) -> Result<Vec<GatewayTask>, StoreError>;
    /// Every task, oldest first (tests and benchmarks: it reads them all).
    fn all(&self) -> Result<Vec<GatewayTask>, StoreError>;
    fn delete(&self, uids: &[u64]) -> Result<(), StoreError>;
    /// The index of the stored tasks, up to date with every write committed before the call.
    fn index(&self) -> Result<RwLockReadGuard<'_, TaskIndex>, StoreError>;
    fn len(&self) -> Result<u64, StoreError> {
        Ok(self.index()?.len())
    }
    fn is_empty(&self) -> Result<bool, StoreError> {
        self.len().map(|n| n == 0)
    }
    /// The size of the store on disk, where the backend knows it.
    fn size_bytes(&self) -> Option<u64> {
        None
    }

    /// Appends a write `node` missed.
    fn hint_push(&self, node: &str, hint: &[u8]) -> Result<(), StoreError>;
    /// The oldest `limit` writes `node` missed, with their keys.
    fn hints(&self, node: &str, limit: usize) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Forgets a replayed hint and stores the task waiting for it, in one transaction.
    fn hint_done(&self, key: &str, task: Option<&GatewayTask>) -> Result<(), StoreError>;
    fn hint_delete(&self, key: &str) -> Result<(), StoreError> {
        self.hint_done(key, None)
    }
    /// How many writes each node missed (nodes with none left out).
    fn hint_counts(&self) -> Result<BTreeMap<String, usize>, StoreError>;

    /// Records a write before any node receives it; its id. `recorded` are its parts for
    /// moving shards, `(move id, request)`, kept in the same transaction.
    fn intent_begin(&self, intent: &[u8], recorded: &[(u64, Vec<u8>)]) -> Result<u64, StoreError>;
    /// Writes recorded and never settled by a gateway that stopped while sending them: all
    /// of them in an embedded store (opened after its gateway stopped); in a shared one, those
    /// old enough that no live gateway can still be sending them.
    fn intents(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
    /// Settles a recorded write in one transaction: forgets the intent, stores its task (if
    /// any) and queues the hints, `(node, request)`.
    fn settle(
        &self,
        intent: u64,
        task: Option<&GatewayTask>,
        hints: &[(String, Vec<u8>)],
    ) -> Result<(), StoreError>;
    /// Forgets the parts an abandoned write recorded for moving shards.
    fn move_log_abandon(&self, intent: u64, moves: &[u64]) -> Result<(), StoreError>;
    /// The first `limit` writes recorded for a move, oldest first, with their keys.
    fn move_log(
        &self,
        move_id: u64,
        limit: usize,
    ) -> Result<Vec<(MoveLogKey, Vec<u8>)>, StoreError>;
    fn move_log_len(&self, move_id: u64) -> Result<u64, StoreError>;
    /// Forgets recorded writes: those up to `through` (inclusive) of the move, or all.
    fn move_log_drop(&self, move_id: u64, through: Option<MoveLogKey>) -> Result<(), StoreError>;

    /// The `maxValuesPerFacet` the client of `index` asked for, if the gateway set the nodes'.
    fn facet_values(&self, index: &str) -> Result<Option<u64>, StoreError>;
    fn set_facet_values(&self, index: &str, value: Option<u64>) -> Result<(), StoreError>;
    /// Records (`true`) or forgets that the key `uid` was deleted through the gateway.
    fn set_key_tombstone(&self, uid: &str, deleted: bool) -> Result<(), StoreError>;
    fn key_tombstones(&self) -> Result<HashSet<String>, StoreError>;
    /// Takes or renews the lease `name` for `holder` for `ttl`; whether `holder` has it. One
    /// gateway at a time does the background work of a shared store (polling tasks,
    /// replaying hints, pruning); an embedded store has one gateway, always the holder.
    fn lease(
        &self,
        _name: &str,
        _holder: &str,
        _ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        Ok(true)
    }

    /// Says that gateway `holder` desires `topology`; the other gateways seen within `live`
    /// and what they desire (none with an embedded store: one gateway).
    fn announce(
        &self,
        _holder: &str,
        _topology: &str,
        _live: std::time::Duration,
    ) -> Result<Vec<peers::Peer>, StoreError> {
        Ok(Vec::new())
    }

    /// Every webhook, `(uuid, JSON)`, in uuid order.
    fn webhooks(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Stores (or, with `None`, deletes) the webhook `uuid`.
    fn set_webhook(&self, uuid: &str, json: Option<&[u8]>) -> Result<(), StoreError>;

    /// The document `doc` as JSON and its version (0 and empty before the first change).
    fn doc(&self, doc: Doc) -> Result<(u64, Vec<u8>), StoreError>;
    /// Replaces `doc` if its version is still `expected`, as version `expected + 1`: one
    /// atomic step; whether it did.
    fn set_doc(&self, doc: Doc, expected: u64, json: &[u8]) -> Result<bool, StoreError>;
    /// The version of `doc` alone (a cheap poll).
    fn doc_version(&self, doc: Doc) -> Result<u64, StoreError> {
        self.doc(doc).map(|(v, _)| v)
    }
    /// Says that gateway `holder` uses `doc`'s `version` from now on.
    fn ack_doc(&self, _doc: Doc, _holder: &str, _version: u64) -> Result<(), StoreError> {
        Ok(())
    }
    /// The version of `doc` each gateway said it uses.
    fn doc_acks(&self, _doc: Doc) -> Result<BTreeMap<String, u64>, StoreError> {
        Ok(BTreeMap::new())
    }
    /// Gives up the lease `name` if `holder` has it.
    fn release(&self, _name: &str, _holder: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A document the gateways of a store share whole, changed by compare-and-set, with the
/// version each gateway says it follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doc {
    /// The alias table (`crate::aliases`).
    Aliases,
    /// The effective placement and the moves of a rebalance (`crate::rebalance::state`).
    Placement,
}

impl Doc {
    pub fn name(self) -> &'static str {
        match self {
            Doc::Aliases => "aliases",
            Doc::Placement => "placement",
        }
    }
}
