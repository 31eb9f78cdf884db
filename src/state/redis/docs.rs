//! Shared documents in Redis (the alias table, the placement): each one hash (`version`,
//! `table`) changed by a compare-and-set script, and a hash of the version each gateway uses.

use std::collections::BTreeMap;

use redis::{AsyncCommands, Script};

use super::RedisStore;
use crate::state::Doc;
use crate::tasks::StoreError;

/// `KEYS = document hash`, `ARGV = expected version, table`: 1 if replaced.
const SET_DOC: &str = r#"
local v = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if v ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'version', v + 1, 'table', ARGV[2])
return 1
"#;

/// `KEYS = lease`, `ARGV = holder`: deletes the lease if `holder` has it.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"#;

impl RedisStore {
    fn doc_key(&self, doc: Doc) -> String {
        format!("{}{}", self.keys.prefix, doc.name())
    }

    fn acks_key(&self, doc: Doc) -> String {
        match doc {
            // The name it had before there were other documents.
            Doc::Aliases => format!("{}alias_acks", self.keys.prefix),
            _ => format!("{}{}_acks", self.keys.prefix, doc.name()),
        }
    }

    pub(super) fn load_doc(&self, doc: Doc) -> Result<(u64, Vec<u8>), StoreError> {
        let key = self.doc_key(doc);
        let (version, table): (Option<u64>, Option<Vec<u8>>) =
            self.run(move |mut c, _, _| async move {
                redis::cmd("HMGET")
                    .arg(&key)
                    .arg("version")
                    .arg("table")
                    .query_async(&mut c)
                    .await
            })?;
        Ok((version.unwrap_or(0), table.unwrap_or_default()))
    }

    pub(super) fn store_doc(
        &self,
        doc: Doc,
        expected: u64,
        json: &[u8],
    ) -> Result<bool, StoreError> {
        let key = self.doc_key(doc);
        let json = json.to_vec();
        let done: i64 = self.run(move |mut c, _, _| async move {
            Script::new(SET_DOC)
                .key(key)
                .arg(expected)
                .arg(json)
                .invoke_async(&mut c)
                .await
        })?;
        Ok(done == 1)
    }

    pub(super) fn load_doc_version(&self, doc: Doc) -> Result<u64, StoreError> {
        let key = self.doc_key(doc);
        let v: Option<u64> =
            self.run(move |mut c, _, _| async move { c.hget(&key, "version").await })?;
        Ok(v.unwrap_or(0))
    }

    pub(super) fn store_doc_ack(
        &self,
        doc: Doc,
        holder: &str,
        version: u64,
    ) -> Result<(), StoreError> {
        let key = self.acks_key(doc);
        let holder = holder.to_string();
        self.run(
            move |mut c, _, _| async move { c.hset::<_, _, _, i64>(&key, holder, version).await },
        )
        .map(drop)
    }

    pub(super) fn load_doc_acks(&self, doc: Doc) -> Result<BTreeMap<String, u64>, StoreError> {
        let key = self.acks_key(doc);
        self.run(move |mut c, _, _| async move { c.hgetall(&key).await })
    }

    pub(super) fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let key = format!("{}lease:{name}", self.keys.prefix);
        let holder = holder.to_string();
        self.run(move |mut c, _, _| async move {
            Script::new(RELEASE)
                .key(key)
                .arg(holder)
                .invoke_async::<i64>(&mut c)
                .await
        })
        .map(drop)
    }
}
