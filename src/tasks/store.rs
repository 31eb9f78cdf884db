//! The crash-safe task map in the data directory (redb): gateway uid → [`GatewayTask`].
//! Every write commits durably before the client hears the uid.

use std::path::Path;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::model::GatewayTask;

const TASKS: TableDefinition<u64, &[u8]> = TableDefinition::new("tasks");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NEXT_UID: &str = "next_uid";

/// A store failure: disk full or corruption (a 500 for clients), or the file still held by
/// the previous process during an upgrade (a 503).
#[derive(Debug)]
pub struct StoreError(pub String);

/// The message of a store held by another process.
const BUSY: &str = "the task store is held by another process (an upgrade in progress?)";

impl StoreError {
    pub fn is_busy(&self) -> bool {
        self.0.starts_with(BUSY)
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

pub struct TaskStore {
    db: Database,
}

impl TaskStore {
    /// Opens (or creates) `tasks.redb` in `dir`.
    pub fn open(dir: &Path) -> Result<TaskStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(err)?;
        let db = Database::create(dir.join("tasks.redb")).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError(BUSY.to_string()),
            other => err(other),
        })?;
        let txn = db.begin_write().map_err(err)?;
        txn.open_table(TASKS).map_err(err)?;
        txn.open_table(META).map_err(err)?;
        txn.commit().map_err(err)?;
        Ok(TaskStore { db })
    }

    /// Allocates the next uid, lets `build` make the task, and stores it, in one transaction.
    pub fn create(
        &self,
        build: impl FnOnce(u64) -> GatewayTask,
    ) -> Result<GatewayTask, StoreError> {
        let txn = self.db.begin_write().map_err(err)?;
        let task = {
            let mut meta = txn.open_table(META).map_err(err)?;
            let uid = meta.get(NEXT_UID).map_err(err)?.map_or(0, |v| v.value());
            meta.insert(NEXT_UID, uid + 1).map_err(err)?;
            let task = build(uid);
            let bytes = serde_json::to_vec(&task).map_err(err)?;
            txn.open_table(TASKS)
                .map_err(err)?
                .insert(uid, bytes.as_slice())
                .map_err(err)?;
            task
        };
        txn.commit().map_err(err)?;
        Ok(task)
    }

    /// Replaces a stored task.
    pub fn put(&self, task: &GatewayTask) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(task).map_err(err)?;
        let txn = self.db.begin_write().map_err(err)?;
        txn.open_table(TASKS)
            .map_err(err)?
            .insert(task.uid, bytes.as_slice())
            .map_err(err)?;
        txn.commit().map_err(err)
    }

    pub fn get(&self, uid: u64) -> Result<Option<GatewayTask>, StoreError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(TASKS).map_err(err)?;
        match table.get(uid).map_err(err)? {
            Some(bytes) => serde_json::from_slice(bytes.value()).map(Some).map_err(err),
            None => Ok(None),
        }
    }

    /// Every task, in uid order (newest last).
    pub fn all(&self) -> Result<Vec<GatewayTask>, StoreError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(TASKS).map_err(err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(err)? {
            let (_, bytes) = entry.map_err(err)?;
            out.push(serde_json::from_slice(bytes.value()).map_err(err)?);
        }
        Ok(out)
    }

    pub fn delete(&self, uids: &[u64]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(err)?;
        {
            let mut table = txn.open_table(TASKS).map_err(err)?;
            for uid in uids {
                table.remove(uid).map_err(err)?;
            }
        }
        txn.commit().map_err(err)
    }

    pub fn len(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(err)?;
        txn.open_table(TASKS).map_err(err)?.len().map_err(err)
    }

    pub fn is_empty(&self) -> Result<bool, StoreError> {
        self.len().map(|n| n == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(uid: u64) -> GatewayTask {
        GatewayTask {
            uid,
            index_uid: Some("m".into()),
            kind: "indexCreation".into(),
            enqueued_at: "2026-01-01T00:00:00Z".into(),
            custom_metadata: None,
            copies: 1,
            node_tasks: vec![],
            details: None,
            error: None,
            canceled_by: None,
            view: None,
        }
    }

    #[test]
    fn uids_grow_and_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("miroir-store-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let store = TaskStore::open(&dir).unwrap();
            assert_eq!(store.create(task).unwrap().uid, 0);
            assert_eq!(store.create(task).unwrap().uid, 1);
            let mut t = store.get(1).unwrap().unwrap();
            t.kind = "indexDeletion".into();
            store.put(&t).unwrap();
        }
        let store = TaskStore::open(&dir).unwrap();
        assert_eq!(store.get(1).unwrap().unwrap().kind, "indexDeletion");
        assert_eq!(
            store.create(task).unwrap().uid,
            2,
            "the counter survives a restart"
        );
        store.delete(&[0]).unwrap();
        assert_eq!(
            store
                .all()
                .unwrap()
                .iter()
                .map(|t| t.uid)
                .collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(store.len().unwrap(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
