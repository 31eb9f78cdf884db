//! The Redis backend of [`StateStore`]: what the gateway persists, shared by every gateway
//! pointed at the same Redis (and key prefix).
//!
//! Writes that touch several keys are Lua scripts, so each is one atomic step, as a redb
//! transaction is. Every task write also appends its facets (before and after) to a stream;
//! each gateway applies that stream to its own [`TaskIndex`] before it answers from it, so a
//! listing through one gateway sees every write another gateway acknowledged.
//!
//! The client is the `redis` crate's connection manager (it reconnects by itself), driven by
//! a runtime of its own on one thread; callers wait for an answer at most `timeout`, then get
//! an "unavailable" error (a `503` with `Retry-After` for clients) rather than hang.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use super::redis_scripts::{
    Keys, Scripts, DELETE_TASKS, HINT_DONE, INTENT_BEGIN, LEASE, PUT_TASKS, RESERVE_UIDS, SETTLE,
};
use super::{Doc, MoveLogKey, StateStore};
use crate::tasks::index::{Facets, TaskIndex};
use crate::tasks::{GatewayTask, StoreError};

mod changes;
mod docs;

use changes::Applied;

/// Changes kept in the stream; a gateway further behind reloads the whole index.
const STREAM_LEN: u64 = 200_000;

/// How old a write in flight must be to belong to a stopped gateway (far beyond any
/// request deadline).
pub const STALE_INTENT: Duration = Duration::from_secs(300);

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where and how to reach Redis.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    pub url: String,
    pub password: Option<String>,
    /// Prepended to every key, so several clusters can share one Redis.
    pub prefix: String,
    /// The longest a caller waits for Redis.
    pub timeout: Duration,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "(set)"))
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

pub struct RedisStore {
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
    conn: ConnectionManager,
    keys: Arc<Keys>,
    scripts: Arc<Scripts>,
    timeout: Duration,
    index: RwLock<TaskIndex>,
    applied: Mutex<Applied>,
    /// One past the highest uid this gateway has seen: the counter never goes below it, even
    /// if Redis lost its last writes.
    floor: AtomicU64,
    metrics: Option<super::StateMetrics>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::unavailable(format!("redis: {e}"))
}

/// `fields` of the hash `key` with their values, in order; fields no longer there left out.
async fn with_values<F: redis::ToRedisArgs + Send + Sync>(
    c: &mut ConnectionManager,
    key: &str,
    fields: Vec<F>,
) -> redis::RedisResult<Vec<(F, Vec<u8>)>> {
    if fields.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
        .arg(key)
        .arg(&fields)
        .query_async(c)
        .await?;
    Ok(fields
        .into_iter()
        .zip(values)
        .filter_map(|(field, value)| Some((field, value?)))
        .collect())
}

/// A move log member: the big-endian (intent, part) key, then the request.
fn member_key(intent: u64, part: u64) -> Vec<u8> {
    let mut out = intent.to_be_bytes().to_vec();
    out.extend_from_slice(&part.to_be_bytes());
    out
}

fn split_member(member: &[u8]) -> Option<((u64, u64), &[u8])> {
    let intent = u64::from_be_bytes(member.get(..8)?.try_into().ok()?);
    let part = u64::from_be_bytes(member.get(8..16)?.try_into().ok()?);
    Some(((intent, part), &member[16..]))
}

/// A task as the scripts take it: (uid, task JSON, facets).
type Encoded = (u64, Vec<u8>, Vec<u8>);

impl RedisStore {
    /// Connects (lazily: a Redis down at start is retried at each use) and loads the index.
    pub fn open(settings: &RedisSettings) -> Result<RedisStore, StoreError> {
        let mut info: redis::ConnectionInfo = settings
            .url
            .as_str()
            .parse()
            .map_err(|e| StoreError(format!("redis url: {e}")))?;
        if let Some(password) = &settings.password {
            let redis_settings = info.redis_settings().clone().set_password(password.clone());
            info = info.set_redis_settings(redis_settings);
        }
        let client = redis::Client::open(info).map_err(unavailable)?;
        let (jobs, mut queue) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let (ready, made) = std::sync::mpsc::sync_channel(1);
        let timeout = settings.timeout;
        std::thread::Builder::new()
            .name("miroir-redis".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready.send(Err(unavailable(e)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let config = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(timeout))
                        .set_response_timeout(Some(timeout))
                        .set_number_of_retries(1)
                        .set_max_delay(Duration::from_millis(500));
                    let made = ConnectionManager::new_lazy_with_config(client, config)
                        .map_err(unavailable);
                    let _ = ready.send(made);
                    while let Some(job) = queue.recv().await {
                        tokio::spawn(job);
                    }
                });
            })
            .map_err(unavailable)?;
        let conn = made.recv().map_err(unavailable)??;
        let store = RedisStore {
            jobs,
            conn,
            keys: Arc::new(Keys::new(&settings.prefix)),
            scripts: Arc::new(Scripts {
                lease: Script::new(LEASE),
                put: Script::new(PUT_TASKS),
                delete: Script::new(DELETE_TASKS),
                reserve: Script::new(RESERVE_UIDS),
                settle: Script::new(SETTLE),
                hint_done: Script::new(HINT_DONE),
                intent_begin: Script::new(INTENT_BEGIN),
            }),
            timeout,
            index: RwLock::new(TaskIndex::default()),
            applied: Mutex::new(Applied {
                id: "0-0".into(),
                seq: 0,
            }),
            floor: AtomicU64::new(0),
            metrics: None,
        };
        store.reload_index()?;
        Ok(store)
    }

    /// Counts round trips and failures in `metrics`.
    pub fn with_metrics(mut self, metrics: super::StateMetrics) -> RedisStore {
        self.metrics = Some(metrics);
        self
    }

    /// Runs `job` with a connection on the Redis thread and waits for its answer.
    fn run<T, F>(
        &self,
        job: impl FnOnce(ConnectionManager, Arc<Keys>, Arc<Scripts>) -> F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = redis::RedisResult<T>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let fut = job(self.conn.clone(), self.keys.clone(), self.scripts.clone());
        let sent = self.jobs.send(Box::pin(async move {
            let _ = tx.send(fut.await);
        }));
        if sent.is_err() {
            return Err(unavailable("the client thread stopped"));
        }
        let started = std::time::Instant::now();
        let result = match rx.recv_timeout(self.timeout) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(unavailable(format!(
                "no answer within {} ms",
                self.timeout.as_millis()
            ))),
        };
        if let Some(m) = &self.metrics {
            m.seconds.observe(started.elapsed().as_secs_f64());
            if result.is_err() {
                m.errors.inc();
            }
        }
        result
    }

    /// `(uid, task JSON, facets)` of each task, for the scripts.
    fn encoded(tasks: &[GatewayTask]) -> Result<Vec<Encoded>, StoreError> {
        tasks
            .iter()
            .map(|t| {
                let json = serde_json::to_vec(t).map_err(|e| StoreError(e.to_string()))?;
                Ok((t.uid, json, Facets::of(t).encode()))
            })
            .collect()
    }

    /// How many tasks this write finished. Large batches go a thousand tasks per script, so
    /// Redis serves others between them.
    fn put_tasks(&self, tasks: &[GatewayTask], only_if_stored: bool) -> Result<u64, StoreError> {
        let mut finished = 0;
        for page in tasks.chunks(1_000) {
            finished += self.put_page(page, only_if_stored)?;
        }
        Ok(finished)
    }

    fn put_page(&self, tasks: &[GatewayTask], only_if_stored: bool) -> Result<u64, StoreError> {
        let encoded = Self::encoded(tasks)?;
        self.run(move |mut c, k, s| async move {
            let mut call = s.put.prepare_invoke();
            call.key(&k.tasks)
                .key(&k.facets)
                .key(&k.changes)
                .key(&k.change_seq);
            call.arg(STREAM_LEN)
                .arg(if only_if_stored { "1" } else { "0" });
            for (uid, json, facets) in &encoded {
                call.arg(*uid).arg(json.as_slice()).arg(facets.as_slice());
            }
            call.invoke_async::<u64>(&mut c).await
        })
    }
}

impl StateStore for RedisStore {
    fn shared(&self) -> bool {
        true
    }

    fn reserve_uids(&self, n: u64) -> Result<u64, StoreError> {
        let floor = self.floor.load(Ordering::Relaxed);
        let first = self.run(move |mut c, k, s| async move {
            s.reserve
                .key(&k.next_uid)
                .arg(n)
                .arg(floor)
                .invoke_async::<u64>(&mut c)
                .await
        })?;
        self.floor.fetch_max(first + n, Ordering::Relaxed);
        Ok(first)
    }

    fn put_many(&self, tasks: &[GatewayTask]) -> Result<(), StoreError> {
        self.put_tasks(tasks, false).map(drop)
    }

    fn update(&self, task: &GatewayTask) -> Result<bool, StoreError> {
        self.put_tasks(std::slice::from_ref(task), true)
            .map(|n| n > 0)
    }

    fn get(&self, uid: u64) -> Result<Option<GatewayTask>, StoreError> {
        let bytes: Option<Vec<u8>> =
            self.run(move |mut c, k, _| async move { c.hget(&k.tasks, uid).await })?;
        bytes
            .map(|b| serde_json::from_slice(&b).map_err(|e| StoreError(e.to_string())))
            .transpose()
    }

    fn tasks(&self, uids: &mut dyn Iterator<Item = u64>) -> Result<Vec<GatewayTask>, StoreError> {
        let uids: Vec<u64> = uids.collect();
        let mut out = Vec::with_capacity(uids.len());
        for page in uids.chunks(1_000) {
            let page = page.to_vec();
            let found = self
                .run(move |mut c, k, _| async move { with_values(&mut c, &k.tasks, page).await })?;
            for (_, bytes) in found {
                out.push(serde_json::from_slice(&bytes).map_err(|e| StoreError(e.to_string()))?);
            }
        }
        Ok(out)
    }

    fn all(&self) -> Result<Vec<GatewayTask>, StoreError> {
        let uids: Vec<u64> = self.index()?.select(&Default::default()).iter().collect();
        self.tasks(&mut uids.into_iter())
    }

    fn delete(&self, uids: &[u64]) -> Result<(), StoreError> {
        for page in uids.chunks(10_000) {
            let page = page.to_vec();
            self.run(move |mut c, k, s| async move {
                let mut call = s.delete.prepare_invoke();
                call.key(&k.tasks)
                    .key(&k.facets)
                    .key(&k.changes)
                    .key(&k.change_seq);
                call.arg(STREAM_LEN);
                for uid in &page {
                    call.arg(*uid);
                }
                call.invoke_async::<i64>(&mut c).await
            })?;
        }
        // The index catches up when next read, not after each write.
        Ok(())
    }

    fn index(&self) -> Result<RwLockReadGuard<'_, TaskIndex>, StoreError> {
        self.catch_up()?;
        Ok(self.index.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn hint_push(&self, node: &str, hint: &[u8]) -> Result<(), StoreError> {
        self.settle_hints(None, &[(node.to_string(), hint.to_vec())])
    }

    fn hints(&self, node: &str, limit: usize) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let node = node.to_string();
        self.run(move |mut c, k, _| async move {
            let keys: Vec<String> = c.zrange(k.hint_queue(&node), 0, limit as isize - 1).await?;
            with_values(&mut c, &k.hints, keys).await
        })
    }

    fn hint_done(&self, key: &str, task: Option<&GatewayTask>) -> Result<(), StoreError> {
        let node = key.split('\0').next().unwrap_or_default().to_string();
        let key = key.to_string();
        let encoded = Self::encoded(task.map(std::slice::from_ref).unwrap_or_default())?;
        self.run(move |mut c, k, s| async move {
            let mut call = s.hint_done.prepare_invoke();
            call.key(&k.hints)
                .key(&k.hint_counts)
                .key(k.hint_queue(&node))
                .key(&k.tasks)
                .key(&k.facets)
                .key(&k.changes)
                .key(&k.change_seq);
            call.arg(&key).arg(&node).arg(STREAM_LEN);
            match encoded.first() {
                Some((uid, json, facets)) => {
                    call.arg(*uid).arg(json.as_slice()).arg(facets.as_slice())
                }
                None => call.arg("").arg("").arg(""),
            };
            call.invoke_async::<i64>(&mut c).await
        })
        .map(drop)
    }

    fn hint_counts(&self) -> Result<BTreeMap<String, usize>, StoreError> {
        self.run(|mut c, k, _| async move {
            let counts: BTreeMap<String, i64> = c.hgetall(&k.hint_counts).await?;
            Ok(counts
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(node, n)| (node, n as usize))
                .collect())
        })
    }

    fn intent_begin(&self, intent: &[u8], recorded: &[(u64, Vec<u8>)]) -> Result<u64, StoreError> {
        let intent = intent.to_vec();
        let recorded = recorded.to_vec();
        self.run(move |mut c, k, s| async move {
            let mut call = s.intent_begin.prepare_invoke();
            call.key(&k.next_intent)
                .key(&k.intents)
                .key(&k.intent_times);
            call.arg(intent.as_slice()).arg(&k.move_log).arg(now_ms());
            for (part, (move_id, bytes)) in recorded.iter().enumerate() {
                call.arg(*move_id)
                    .arg((part as u64).to_be_bytes().as_slice())
                    .arg(bytes.as_slice());
            }
            call.invoke_async::<u64>(&mut c).await
        })
    }

    /// Those recorded more than [`STALE_INTENT`] ago: a live gateway settles its writes
    /// within its request deadline, so these belong to a gateway that stopped.
    fn intents(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let before = now_ms().saturating_sub(STALE_INTENT.as_millis() as u64);
        let mut stale: Vec<(u64, Vec<u8>)> = self.run(move |mut c, k, _| async move {
            let times: Vec<(u64, u64)> = c.hgetall(&k.intent_times).await?;
            let ids: Vec<u64> = times
                .into_iter()
                .filter(|(_, at)| *at < before)
                .map(|(id, _)| id)
                .collect();
            with_values(&mut c, &k.intents, ids).await
        })?;
        stale.sort_by_key(|(id, _)| *id);
        Ok(stale)
    }

    fn settle(
        &self,
        intent: u64,
        task: Option<&GatewayTask>,
        hints: &[(String, Vec<u8>)],
    ) -> Result<(), StoreError> {
        let encoded = Self::encoded(task.map(std::slice::from_ref).unwrap_or_default())?;
        let hints = hints.to_vec();
        self.run(move |mut c, k, s| async move {
            let mut call = s.settle.prepare_invoke();
            call.key(&k.intents)
                .key(&k.tasks)
                .key(&k.facets)
                .key(&k.changes)
                .key(&k.change_seq)
                .key(&k.next_hint)
                .key(&k.hints)
                .key(&k.hint_counts)
                .key(&k.intent_times);
            call.arg(intent).arg(STREAM_LEN);
            match encoded.first() {
                Some((uid, json, facets)) => {
                    call.arg(*uid).arg(json.as_slice()).arg(facets.as_slice())
                }
                None => call.arg("").arg("").arg(""),
            };
            call.arg(&k.hint_queue);
            for (node, hint) in &hints {
                call.arg(node).arg(hint.as_slice());
            }
            call.invoke_async::<i64>(&mut c).await
        })
        .map(drop)
    }

    fn move_log_abandon(&self, intent: u64, moves: &[u64]) -> Result<(), StoreError> {
        let moves = moves.to_vec();
        self.run(move |mut c, k, _| async move {
            for m in moves {
                let mut from = b"[".to_vec();
                from.extend(member_key(intent, 0));
                let mut to = b"(".to_vec();
                to.extend(member_key(intent.saturating_add(1), 0));
                let _: i64 = c.zrembylex(k.move_log(m), from, to).await?;
            }
            Ok(())
        })
    }

    fn move_log(
        &self,
        move_id: u64,
        limit: usize,
    ) -> Result<Vec<(MoveLogKey, Vec<u8>)>, StoreError> {
        let members: Vec<Vec<u8>> = self.run(move |mut c, k, _| async move {
            c.zrange(k.move_log(move_id), 0, limit as isize - 1).await
        })?;
        Ok(members
            .iter()
            .filter_map(|m| split_member(m))
            .map(|((intent, part), body)| ((move_id, intent, part), body.to_vec()))
            .collect())
    }

    fn move_log_len(&self, move_id: u64) -> Result<u64, StoreError> {
        self.run(move |mut c, k, _| async move { c.zcard(k.move_log(move_id)).await })
    }

    fn move_log_drop(&self, move_id: u64, through: Option<MoveLogKey>) -> Result<(), StoreError> {
        self.run(move |mut c, k, _| async move {
            match through {
                None => {
                    let _: i64 = c.del(k.move_log(move_id)).await?;
                }
                Some((_, intent, part)) => {
                    // Every member whose key sorts at or before (intent, part).
                    let next = match part.checked_add(1) {
                        Some(p) => member_key(intent, p),
                        None => member_key(intent.saturating_add(1), 0),
                    };
                    let mut to = b"(".to_vec();
                    to.extend(next);
                    let _: i64 = c.zrembylex(k.move_log(move_id), "-", to).await?;
                }
            }
            Ok(())
        })
    }

    fn facet_values(&self, index: &str) -> Result<Option<u64>, StoreError> {
        let index = index.to_string();
        self.run(move |mut c, k, _| async move { c.hget(&k.facet_values, index).await })
    }

    fn set_facet_values(&self, index: &str, value: Option<u64>) -> Result<(), StoreError> {
        let index = index.to_string();
        self.run(move |mut c, k, _| async move {
            let _: i64 = match value {
                Some(v) => c.hset(&k.facet_values, index, v).await?,
                None => c.hdel(&k.facet_values, index).await?,
            };
            Ok(())
        })
    }

    fn set_key_tombstone(&self, uid: &str, deleted: bool) -> Result<(), StoreError> {
        let uid = uid.to_string();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.run(move |mut c, k, _| async move {
            let _: i64 = if deleted {
                c.hset(&k.key_tombstones, uid, now).await?
            } else {
                c.hdel(&k.key_tombstones, uid).await?
            };
            Ok(())
        })
    }

    fn key_tombstones(&self) -> Result<HashSet<String>, StoreError> {
        self.run(|mut c, k, _| async move { c.hkeys(&k.key_tombstones).await })
    }

    fn lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        let key = format!("{}lease:{name}", self.keys.prefix);
        let holder = holder.to_string();
        let ms = ttl.as_millis() as u64;
        let held: i64 = self.run(move |mut c, _, s| async move {
            s.lease
                .key(key)
                .arg(holder)
                .arg(ms)
                .invoke_async(&mut c)
                .await
        })?;
        Ok(held == 1)
    }

    fn announce(
        &self,
        holder: &str,
        topology: &str,
        live: Duration,
    ) -> Result<Vec<super::peers::Peer>, StoreError> {
        let key = format!("{}gateways", self.keys.prefix);
        let now = now_ms();
        let entry = format!("{now} {topology}");
        let holder = holder.to_string();
        let all: Vec<(String, String)> = self.run(move |mut c, _, _| async move {
            let _: i64 = c.hset(&key, &holder, entry).await?;
            let all: Vec<(String, String)> = c.hgetall(&key).await?;
            // Gateways silent for long are forgotten.
            let long_gone = now.saturating_sub(10 * live.as_millis() as u64);
            for (gateway, said) in &all {
                let at: u64 = said
                    .split(' ')
                    .next()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                if at < long_gone {
                    let _: i64 = c.hdel(&key, gateway).await?;
                }
            }
            Ok(all.into_iter().filter(|(g, _)| *g != holder).collect())
        })?;
        let recent = now.saturating_sub(live.as_millis() as u64);
        Ok(all
            .into_iter()
            .filter_map(|(gateway, said)| {
                let (at, topology) = said.split_once(' ')?;
                (at.parse::<u64>().ok()? >= recent).then(|| super::peers::Peer {
                    gateway,
                    topology: topology.to_string(),
                })
            })
            .collect())
    }

    fn webhooks(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut all: Vec<(String, Vec<u8>)> =
            self.run(|mut c, k, _| async move { c.hgetall(&k.webhooks).await })?;
        all.sort();
        Ok(all)
    }

    fn doc(&self, doc: Doc) -> Result<(u64, Vec<u8>), StoreError> {
        self.load_doc(doc)
    }

    fn set_doc(&self, doc: Doc, expected: u64, json: &[u8]) -> Result<bool, StoreError> {
        self.store_doc(doc, expected, json)
    }

    fn doc_version(&self, doc: Doc) -> Result<u64, StoreError> {
        self.load_doc_version(doc)
    }

    fn ack_doc(&self, doc: Doc, holder: &str, version: u64) -> Result<(), StoreError> {
        self.store_doc_ack(doc, holder, version)
    }

    fn doc_acks(&self, doc: Doc) -> Result<BTreeMap<String, u64>, StoreError> {
        self.load_doc_acks(doc)
    }

    fn release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.release_lease(name, holder)
    }

    fn set_webhook(&self, uuid: &str, json: Option<&[u8]>) -> Result<(), StoreError> {
        let uuid = uuid.to_string();
        let json = json.map(<[u8]>::to_vec);
        self.run(move |mut c, k, _| async move {
            let _: i64 = match json {
                Some(j) => c.hset(&k.webhooks, uuid, j).await?,
                None => c.hdel(&k.webhooks, uuid).await?,
            };
            Ok(())
        })
    }
}

impl RedisStore {
    /// Queues hints (and forgets intent `intent`, if any) in one step.
    fn settle_hints(
        &self,
        intent: Option<u64>,
        hints: &[(String, Vec<u8>)],
    ) -> Result<(), StoreError> {
        // Intent ids start at 0: a negative one matches no intent.
        let intent = intent.map_or(-1, |i| i as i64);
        let hints = hints.to_vec();
        self.run(move |mut c, k, s| async move {
            let mut call = s.settle.prepare_invoke();
            call.key(&k.intents)
                .key(&k.tasks)
                .key(&k.facets)
                .key(&k.changes)
                .key(&k.change_seq)
                .key(&k.next_hint)
                .key(&k.hints)
                .key(&k.hint_counts)
                .key(&k.intent_times);
            call.arg(intent)
                .arg(STREAM_LEN)
                .arg("")
                .arg("")
                .arg("")
                .arg(&k.hint_queue);
            for (node, hint) in &hints {
                call.arg(node).arg(hint.as_slice());
            }
            call.invoke_async::<i64>(&mut c).await
        })
        .map(drop)
    }
}
