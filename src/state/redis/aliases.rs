//! The alias table in Redis: one hash (`version`, `table`) changed by a compare-and-set
//! script, and a hash of the version each gateway uses.

use std::collections::BTreeMap;

use redis::{AsyncCommands, Script};

use super::RedisStore;
use crate::tasks::StoreError;

/// `KEYS = aliases hash`, `ARGV = expected version, table`: 1 if replaced.
const SET_ALIASES: &str = r#"
local v = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if v ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'version', v + 1, 'table', ARGV[2])
return 1
"#;

impl RedisStore {
    fn aliases_key(&self) -> String {
        format!("{}aliases", self.keys.prefix)
    }

    fn acks_key(&self) -> String {
        format!("{}alias_acks", self.keys.prefix)
    }

    pub(super) fn load_aliases(&self) -> Result<(u64, Vec<u8>), StoreError> {
        let key = self.aliases_key();
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

    pub(super) fn store_aliases(&self, expected: u64, json: &[u8]) -> Result<bool, StoreError> {
        let key = self.aliases_key();
        let json = json.to_vec();
        let done: i64 = self.run(move |mut c, _, _| async move {
            Script::new(SET_ALIASES)
                .key(key)
                .arg(expected)
                .arg(json)
                .invoke_async(&mut c)
                .await
        })?;
        Ok(done == 1)
    }

    pub(super) fn load_aliases_version(&self) -> Result<u64, StoreError> {
        let key = self.aliases_key();
        let v: Option<u64> =
            self.run(move |mut c, _, _| async move { c.hget(&key, "version").await })?;
        Ok(v.unwrap_or(0))
    }

    pub(super) fn store_alias_ack(&self, holder: &str, version: u64) -> Result<(), StoreError> {
        let key = self.acks_key();
        let holder = holder.to_string();
        self.run(
            move |mut c, _, _| async move { c.hset::<_, _, _, i64>(&key, holder, version).await },
        )
        .map(drop)
    }

    pub(super) fn load_alias_acks(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let key = self.acks_key();
        self.run(move |mut c, _, _| async move { c.hgetall(&key).await })
    }
}
