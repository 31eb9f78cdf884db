//! The crash-safe task map in the data directory (redb): gateway uid → [`GatewayTask`].
//! Every write commits durably before the client hears the uid.

use std::path::Path;

use std::sync::{Mutex, RwLock, RwLockReadGuard};

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::index::{Facets, TaskIndex};
use super::model::GatewayTask;
pub use crate::state::MoveLogKey;
use crate::state::{Doc, StateStore};

const TASKS: TableDefinition<u64, &[u8]> = TableDefinition::new("tasks");
/// What listings filter each task on ([`Facets`]), read at open to build the [`TaskIndex`].
const FACETS: TableDefinition<u64, &[u8]> = TableDefinition::new("task_facets");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Writes a node missed, by `node \0 sequence`, replayed in order when it is back.
const HINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("hints");
/// How many hints each node has (kept beside them, so counting never reads the bodies).
const HINT_COUNTS: TableDefinition<&str, u64> = TableDefinition::new("hint_counts");
/// Writes recorded before any node receives them, by intent id; gone once settled.
const INTENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("intents");
/// The `maxValuesPerFacet` each index's client asked for (nodes keep more), by index uid.
const FACET_VALUES: TableDefinition<&str, u64> = TableDefinition::new("facet_values");
/// API keys deleted through the gateway (uid -> unix seconds), deleted again wherever a node
/// still holds one (see `crate::keys`).
const KEY_TOMBSTONES: TableDefinition<&str, u64> = TableDefinition::new("key_tombstones");
/// The gateway's webhooks (uuid -> the webhook as JSON), see `crate::webhooks`.
const WEBHOOKS: TableDefinition<&str, &[u8]> = TableDefinition::new("webhooks");
/// The alias table (`"table"`, JSON) and its version (`"version"`, u64 little-endian).
const ALIASES: TableDefinition<&str, &[u8]> = TableDefinition::new("aliases");
/// Other shared documents (`"{name}"` and `"{name}.version"`), see `crate::state::Doc`.
const DOCS: TableDefinition<&str, &[u8]> = TableDefinition::new("docs");
/// Writes recorded for a moving shard's next owner, by (move id, intent id, part), replayed
/// in order once the shard is copied (see `crate::rebalance`).
const MOVE_LOG: TableDefinition<(u64, u64, u64), &[u8]> = TableDefinition::new("move_log");
const NEXT_HINT: &str = "next_hint";
const NEXT_INTENT: &str = "next_intent";
const NEXT_UID: &str = "next_uid";

/// A store failure: disk full or corruption (a 500 for clients), or the file still held by
/// the previous process during an upgrade (a 503).
#[derive(Debug)]
pub struct StoreError(pub String);

/// The message of a store held by another process.
const BUSY: &str = "the task store is held by another process (an upgrade in progress?)";

/// The start of the message of a shared store that cannot be reached.
const UNAVAILABLE: &str = "the shared state store cannot be reached";

impl StoreError {
    pub fn is_busy(&self) -> bool {
        self.0.starts_with(BUSY)
    }

    /// A shared store (Redis) that is down or too slow: retry later.
    pub fn unavailable(detail: impl std::fmt::Display) -> StoreError {
        StoreError(format!("{UNAVAILABLE} ({detail})"))
    }

    pub fn is_unavailable(&self) -> bool {
        self.0.starts_with(UNAVAILABLE)
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "task store: {}", self.0)
    }
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

fn add_count(txn: &redb::WriteTransaction, node: &str, delta: i64) -> Result<(), StoreError> {
    let mut counts = txn.open_table(HINT_COUNTS).map_err(err)?;
    let now = counts.get(node).map_err(err)?.map_or(0, |v| v.value());
    match now.saturating_add_signed(delta) {
        0 => counts.remove(node).map_err(err).map(drop),
        n => counts.insert(node, n).map_err(err).map(drop),
    }
}

/// Appends `hint` to `node`'s queue within `txn`.
fn push_hint(txn: &redb::WriteTransaction, node: &str, hint: &[u8]) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META).map_err(err)?;
    let seq = meta.get(NEXT_HINT).map_err(err)?.map_or(0, |v| v.value());
    meta.insert(NEXT_HINT, seq + 1).map_err(err)?;
    let key = format!("{node}\0{seq:020}");
    txn.open_table(HINTS)
        .map_err(err)?
        .insert(key.as_str(), hint)
        .map_err(err)?;
    add_count(txn, node, 1)
}

/// A task stored or removed by a transaction: its uid, facets before and after; applied to
/// the index once the transaction commits.
type Change = (u64, Option<Facets>, Option<Facets>);

/// Stores `task` (and its facets) within `txn`.
fn write_task(txn: &redb::WriteTransaction, task: &GatewayTask) -> Result<Change, StoreError> {
    let bytes = serde_json::to_vec(task).map_err(err)?;
    txn.open_table(TASKS)
        .map_err(err)?
        .insert(task.uid, bytes.as_slice())
        .map_err(err)?;
    let facets = Facets::of(task);
    let old = txn
        .open_table(FACETS)
        .map_err(err)?
        .insert(task.uid, facets.encode().as_slice())
        .map_err(err)?
        .and_then(|old| Facets::decode(old.value()));
    Ok((task.uid, old, Some(facets)))
}

/// Removes task `uid` within `txn`.
fn remove_task(txn: &redb::WriteTransaction, uid: u64) -> Result<Change, StoreError> {
    txn.open_table(TASKS)
        .map_err(err)?
        .remove(uid)
        .map_err(err)?;
    let old = txn
        .open_table(FACETS)
        .map_err(err)?
        .remove(uid)
        .map_err(err)?
        .and_then(|old| Facets::decode(old.value()));
    Ok((uid, old, None))
}

/// The facets table, made from the tasks where it is missing or incomplete (a store from
/// before it existed).
fn fill_facets(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(err)?;
    {
        let tasks = txn.open_table(TASKS).map_err(err)?;
        let mut facets = txn.open_table(FACETS).map_err(err)?;
        if tasks.len().map_err(err)? == facets.len().map_err(err)? {
            return Ok(());
        }
        for entry in tasks.iter().map_err(err)? {
            let (uid, bytes) = entry.map_err(err)?;
            let task: GatewayTask = serde_json::from_slice(bytes.value()).map_err(err)?;
            facets
                .insert(uid.value(), Facets::of(&task).encode().as_slice())
                .map_err(err)?;
        }
    }
    txn.commit().map_err(err)
}

/// The index of the stored tasks, from their facets.
fn load_index(db: &Database) -> Result<TaskIndex, StoreError> {
    let txn = db.begin_read().map_err(err)?;
    let table = txn.open_table(FACETS).map_err(err)?;
    let mut index = TaskIndex::default();
    for entry in table.iter().map_err(err)? {
        let (uid, bytes) = entry.map_err(err)?;
        let facets = Facets::decode(bytes.value())
            .ok_or_else(|| StoreError(format!("unreadable facets of task {}", uid.value())))?;
        index.replace(uid.value(), None, Some(&facets));
    }
    Ok(index)
}

/// Removes a hint within `txn`.
fn remove_hint(txn: &redb::WriteTransaction, key: &str) -> Result<(), StoreError> {
    let removed = txn
        .open_table(HINTS)
        .map_err(err)?
        .remove(key)
        .map_err(err)?
        .is_some();
    if removed {
        let node = key.split('\0').next().unwrap_or_default();
        add_count(txn, node, -1)?;
    }
    Ok(())
}

pub struct TaskStore {
    db: Database,
    path: std::path::PathBuf,
    index: RwLock<TaskIndex>,
    /// Held from a task write's transaction to its index update, so the index sees the
    /// writes in their commit order.
    writing: Mutex<()>,
}

impl TaskStore {
    /// Opens (or creates) `tasks.redb` in `dir`.
    pub fn open(dir: &Path) -> Result<TaskStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(err)?;
        let path = dir.join("tasks.redb");
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError(BUSY.to_string()),
            other => err(other),
        })?;
        let txn = db.begin_write().map_err(err)?;
        txn.open_table(TASKS).map_err(err)?;
        txn.open_table(META).map_err(err)?;
        txn.open_table(HINTS).map_err(err)?;
        txn.open_table(HINT_COUNTS).map_err(err)?;
        txn.open_table(INTENTS).map_err(err)?;
        txn.open_table(FACET_VALUES).map_err(err)?;
        txn.open_table(MOVE_LOG).map_err(err)?;
        txn.open_table(KEY_TOMBSTONES).map_err(err)?;
        txn.open_table(WEBHOOKS).map_err(err)?;
        txn.open_table(ALIASES).map_err(err)?;
        txn.open_table(DOCS).map_err(err)?;
        txn.open_table(FACETS).map_err(err)?;
        txn.commit().map_err(err)?;
        fill_facets(&db)?;
        let index = RwLock::new(load_index(&db)?);
        Ok(TaskStore {
            db,
            path,
            index,
            writing: Mutex::new(()),
        })
    }

    fn write_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies committed changes to the index.
    fn apply(&self, changes: &[Change]) {
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        for (uid, old, new) in changes {
            index.replace(*uid, old.as_ref(), new.as_ref());
        }
    }
}

impl StateStore for TaskStore {
    fn index(&self) -> Result<RwLockReadGuard<'_, TaskIndex>, StoreError> {
        Ok(self.index.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn tasks(&self, uids: &mut dyn Iterator<Item = u64>) -> Result<Vec<GatewayTask>, StoreError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(TASKS).map_err(err)?;
        let mut out = Vec::new();
        for uid in uids {
            if let Some(bytes) = table.get(uid).map_err(err)? {
                out.push(serde_json::from_slice(bytes.value()).map_err(err)?);
            }
        }
        Ok(out)
    }

    /// Not flushed to disk: see [`StateStore::reserve_uids`]; the commit that stores a task
    /// flushes the counter with it.
    fn reserve_uids(&self, n: u64) -> Result<u64, StoreError> {
        let mut txn = self.db.begin_write().map_err(err)?;
        txn.set_durability(redb::Durability::None);
        let first = {
            let mut meta = txn.open_table(META).map_err(err)?;
            let first = meta.get(NEXT_UID).map_err(err)?.map_or(0, |v| v.value());
            meta.insert(NEXT_UID, first + n).map_err(err)?;
            first
        };
        txn.commit().map_err(err)?;
        Ok(first)
    }

    fn put_many(&self, tasks: &[GatewayTask]) -> Result<(), StoreError> {
        let _writing = self.write_lock();
        let txn = self.db.begin_write().map_err(err)?;
        let changes = tasks
            .iter()
            .map(|t| write_task(&txn, t))
            .collect::<Result<Vec<_>, _>>()?;
        txn.commit().map_err(err)?;
        self.apply(&changes);
        Ok(())
    }

    /// Not flushed to disk: a view is what the nodes said, and a view lost in a crash is
    /// asked of them again (the task stays pending until a durable commit holds it final).
    /// This saves a write its third fsync.
    fn update(&self, task: &GatewayTask) -> Result<bool, StoreError> {
        let _writing = self.write_lock();
        let mut txn = self.db.begin_write().map_err(err)?;
        txn.set_durability(redb::Durability::None);
        let stored = txn
            .open_table(TASKS)
            .map_err(err)?
            .get(task.uid)
            .map_err(err)?
            .is_some();
        let change = if stored {
            Some(write_task(&txn, task)?)
        } else {
            None
        };
        txn.commit().map_err(err)?;
        let finished_here = change.as_ref().is_some_and(|(_, old, new)| {
            !old.as_ref().is_some_and(|f| f.status.is_final())
                && new.as_ref().is_some_and(|f| f.status.is_final())
        });
        self.apply(change.as_slice());
        Ok(finished_here)
    }

    fn get(&self, uid: u64) -> Result<Option<GatewayTask>, StoreError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(TASKS).map_err(err)?;
        match table.get(uid).map_err(err)? {
            Some(bytes) => serde_json::from_slice(bytes.value()).map(Some).map_err(err),
            None => Ok(None),
        }
    }

    /// Every task, in uid order (newest last).
    fn all(&self) -> Result<Vec<GatewayTask>, StoreError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(TASKS).map_err(err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(err)? {
            let (_, bytes) = entry.map_err(err)?;
            out.push(serde_json::from_slice(bytes.value()).map_err(err)?);
        }
        Ok(out)
    }

    fn delete(&self, uids: &[u64]) -> Result<(), StoreError> {
        let _writing = self.write_lock();
        let txn = self.db.begin_write().map_err(err)?;
        let changes = uids
            .iter()
            .map(|uid| remove_task(&txn, *uid))
            .collect::<Result<Vec<_>, _>>()?;
        txn.commit().map_err(err)?;
        self.apply(&changes);
        Ok(())
    }

    /// Appends a write `node` missed.
    fn hint_push(&self, node: &str, hint: &[u8]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(err)?;
        push_hint(&txn, node, hint)?;
        txn.commit().map_err(err)
    }

    /// The `maxValuesPerFacet` the client of `index` asked for, if the gateway set the nodes'.
    fn facet_values(&self, index: &str) -> Result<Option<u64>, StoreError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(FACET_VALUES).map_err(err)?;
        Ok(table.get(index).map_err(err)?.map(|v| v.value()))
    }

    /// Records (or, with `None`, forgets) the client's `maxValuesPerFacet` of `index`.
    fn set_facet_values(&self, index: &str, value: Option<u64>) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(err)?;
        {
            let mut table = txn.open_table(FACET_VALUES).map_err(err)?;
            match value {
                Some(v) => table.insert(index, v).map(drop),
                None => table.remove(index).map(drop),
            }
            .map_err(err)?;
        }
        txn.commit().map_err(err)
    }

    /// Records (`true`) or forgets that the key `uid` was deleted through the gateway.
    fn set_key_tombstone(&self, uid: &str, deleted: bool) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(err)?;
        {
            let mut table = txn.open_table(KEY_TOMBSTONES).map_err(err)?;
            if deleted {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                table.insert(uid, now).map_err(err)?;
            } else {
                table.remove(uid).map_err(err)?;
            }
        }
        txn.commit().map_err(err)
    }

    /// The uids of the keys deleted through the gateway.
    fn key_tombstones(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(KEY_TOMBSTONES).map_err(err)?;
        let mut uids = std::collections::HashSet::new();
        for entry in table.iter().map_err(err)? {
            let (uid, _) = entry.map_err(err)?;
            uids.insert(uid.value().to_string());
        }
        Ok(uids)
    }

    /// Every webhook, `(uuid, JSON)`, in uuid order.
    fn webhooks(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(WEBHOOKS).map_err(err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(err)? {
            let (uuid, json) = entry.map_err(err)?;
            out.push((uuid.value().to_string(), json.value().to_vec()));
        }
        Ok(out)
    }

    /// Stores (or, with `None`, deletes) the webhook `uuid`.
    fn set_webhook(&self, uuid: &str, json: Option<&[u8]>) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(err)?;
        {
            let mut table = txn.open_table(WEBHOOKS).map_err(err)?;
            match json {
                Some(j) => table.insert(uuid, j).map(drop),
                None => table.remove(uuid).map(drop),
            }
            .map_err(err)?;
        }
        txn.commit().map_err(err)
    }

    fn doc(&self, doc: Doc) -> Result<(u64, Vec<u8>), StoreError> {
        let (def, keys) = doc_place(doc);
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(def).map_err(err)?;
        read_doc(&table, &keys)
    }

    fn set_doc(&self, doc: Doc, expected: u64, json: &[u8]) -> Result<bool, StoreError> {
        let (def, keys) = doc_place(doc);
        let txn = self.db.begin_write().map_err(err)?;
        {
            let mut table = txn.open_table(def).map_err(err)?;
            let (version, _) = read_doc(&table, &keys)?;
            if version != expected {
                return Ok(false);
            }
            let next = (expected + 1).to_le_bytes();
            table.insert(keys.1.as_str(), &next[..]).map_err(err)?;
            table.insert(keys.0.as_str(), json).map_err(err)?;
        }
        txn.commit().map_err(err)?;
        Ok(true)
    }

    /// Records a write before any node receives it; its id.
    /// `recorded` are the parts for moving shards, `(move id, request)`, kept in the same
    /// transaction.
    fn intent_begin(&self, intent: &[u8], recorded: &[(u64, Vec<u8>)]) -> Result<u64, StoreError> {
        let txn = self.db.begin_write().map_err(err)?;
        let id = {
            let mut meta = txn.open_table(META).map_err(err)?;
            let id = meta.get(NEXT_INTENT).map_err(err)?.map_or(0, |v| v.value());
            meta.insert(NEXT_INTENT, id + 1).map_err(err)?;
            txn.open_table(INTENTS)
                .map_err(err)?
                .insert(id, intent)
                .map_err(err)?;
            let mut log = txn.open_table(MOVE_LOG).map_err(err)?;
            for (part, (move_id, bytes)) in recorded.iter().enumerate() {
                log.insert((*move_id, id, part as u64), bytes.as_slice())
                    .map_err(err)?;
            }
            id
        };
        txn.commit().map_err(err)?;
        Ok(id)
    }

    /// Writes recorded and never settled (the gateway stopped while sending them).
    fn intents(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(INTENTS).map_err(err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(err)? {
            let (k, v) = entry.map_err(err)?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Forgets the parts an abandoned write recorded for moving shards.
    fn move_log_abandon(&self, intent: u64, moves: &[u64]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(err)?;
        {
            let mut log = txn.open_table(MOVE_LOG).map_err(err)?;
            for &m in moves {
                log.retain_in((m, intent, 0)..=(m, intent, u64::MAX), |_, _| false)
                    .map_err(err)?;
            }
        }
        txn.commit().map_err(err)
    }

    /// The first `limit` writes recorded for a move, oldest first, with their keys.
    fn move_log(
        &self,
        move_id: u64,
        limit: usize,
    ) -> Result<Vec<(MoveLogKey, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(MOVE_LOG).map_err(err)?;
        let mut out = Vec::new();
        for entry in table
            .range((move_id, 0, 0)..=(move_id, u64::MAX, u64::MAX))
            .map_err(err)?
            .take(limit)
        {
            let (k, v) = entry.map_err(err)?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// How many writes are recorded for a move.
    fn move_log_len(&self, move_id: u64) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(MOVE_LOG).map_err(err)?;
        let n = table
            .range((move_id, 0, 0)..=(move_id, u64::MAX, u64::MAX))
            .map_err(err)?
            .count();
        Ok(n as u64)
    }

    /// Forgets recorded writes: those up to `through` (inclusive) of the move, or all of them.
    fn move_log_drop(&self, move_id: u64, through: Option<MoveLogKey>) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(err)?;
        {
            let mut log = txn.open_table(MOVE_LOG).map_err(err)?;
            let end = through.unwrap_or((move_id, u64::MAX, u64::MAX));
            log.retain_in((move_id, 0, 0)..=end, |_, _| false)
                .map_err(err)?;
        }
        txn.commit().map_err(err)
    }

    fn settle(
        &self,
        intent: u64,
        task: Option<&GatewayTask>,
        hints: &[(String, Vec<u8>)],
    ) -> Result<(), StoreError> {
        let _writing = self.write_lock();
        let txn = self.db.begin_write().map_err(err)?;
        txn.open_table(INTENTS)
            .map_err(err)?
            .remove(intent)
            .map_err(err)?;
        let change = task.map(|t| write_task(&txn, t)).transpose()?;
        for (node, hint) in hints {
            push_hint(&txn, node, hint)?;
        }
        txn.commit().map_err(err)?;
        self.apply(change.as_slice());
        Ok(())
    }

    /// The oldest `limit` writes `node` missed, with their keys.
    fn hints(&self, node: &str, limit: usize) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(HINTS).map_err(err)?;
        let (from, to) = (format!("{node}\0"), format!("{node}\u{1}"));
        let mut out = Vec::new();
        for entry in table
            .range(from.as_str()..to.as_str())
            .map_err(err)?
            .take(limit)
        {
            let (k, v) = entry.map_err(err)?;
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Forgets a replayed hint and stores the task waiting for it, in one transaction.
    fn hint_done(&self, key: &str, task: Option<&GatewayTask>) -> Result<(), StoreError> {
        let _writing = self.write_lock();
        let txn = self.db.begin_write().map_err(err)?;
        let change = task.map(|t| write_task(&txn, t)).transpose()?;
        remove_hint(&txn, key)?;
        txn.commit().map_err(err)?;
        self.apply(change.as_slice());
        Ok(())
    }

    /// How many writes each node missed (nodes with none left out).
    fn hint_counts(&self) -> Result<std::collections::BTreeMap<String, usize>, StoreError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(HINT_COUNTS).map_err(err)?;
        let mut out = std::collections::BTreeMap::new();
        for entry in table.iter().map_err(err)? {
            let (k, v) = entry.map_err(err)?;
            out.insert(k.value().to_string(), v.value() as usize);
        }
        Ok(out)
    }

    fn size_bytes(&self) -> Option<u64> {
        std::fs::metadata(&self.path).ok().map(|m| m.len())
    }
}

/// Where `doc` is kept: its table, and the keys of its JSON and of its version.
fn doc_place(
    doc: Doc,
) -> (
    TableDefinition<'static, &'static str, &'static [u8]>,
    (String, String),
) {
    match doc {
        // Where the alias table was before there were other documents.
        Doc::Aliases => (ALIASES, ("table".into(), "version".into())),
        _ => (DOCS, (doc.name().into(), format!("{}.version", doc.name()))),
    }
}

/// A document and its version, from either kind of table handle.
fn read_doc(
    table: &impl redb::ReadableTable<&'static str, &'static [u8]>,
    (json_key, version_key): &(String, String),
) -> Result<(u64, Vec<u8>), StoreError> {
    let version = match table.get(version_key.as_str()).map_err(err)? {
        Some(v) => {
            let bytes: [u8; 8] = v.value().try_into().unwrap_or_default();
            u64::from_le_bytes(bytes)
        }
        None => 0,
    };
    let json = table
        .get(json_key.as_str())
        .map_err(err)?
        .map(|v| v.value().to_vec())
        .unwrap_or_default();
    Ok((version, json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::contract;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("miroir-store-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_embedded_store_keeps_the_contract() {
        let dir = scratch("contract");
        contract::check_all(&|| Box::new(TaskStore::open(&dir).unwrap()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_unsettled_write_is_recovered_at_open() {
        let dir = scratch("intents");
        let id = {
            let store = TaskStore::open(&dir).unwrap();
            store.intent_begin(b"in flight", &[]).unwrap()
        };
        let store = TaskStore::open(&dir).unwrap();
        assert_eq!(store.intents().unwrap(), [(id, b"in flight".to_vec())]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_store_from_before_the_index_gets_one_at_open() {
        let dir = scratch("facets");
        {
            let store = TaskStore::open(&dir).unwrap();
            for _ in 0..3 {
                contract::create(&store);
            }
        }
        {
            let db = Database::create(dir.join("tasks.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            txn.delete_table(FACETS).unwrap();
            txn.commit().unwrap();
        }
        let store = TaskStore::open(&dir).unwrap();
        let filter = super::super::TaskFilter {
            index_uids: Some(vec!["m".into()]),
            ..Default::default()
        };
        assert_eq!(store.index().unwrap().select(&filter).len(), 3);
        assert_eq!(store.index().unwrap().unfinished().len(), 3);
        assert_eq!(store.len().unwrap(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
