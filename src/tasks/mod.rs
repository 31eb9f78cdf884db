//! Gateway tasks: every write answers with one integer `taskUid` owned by the gateway, mapped
//! to the node tasks it created; views are aggregated from those (README, "Tasks").

pub mod aggregate;
pub mod handoff;
pub mod index;
pub mod intent;
pub mod model;
pub mod prune;
pub mod query;
pub mod refresh;
pub mod repair;
pub mod store;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{json, Value};

pub use model::{GatewayTask, NodeTaskRef, Status};
pub use query::TaskFilter;
pub use store::{StoreError, TaskStore};

use crate::auth::Scope;
use crate::cache::SearchCache;
use crate::cluster::Cluster;
use crate::state::{MoveLogKey, StateStore};
use crate::transport::NodeRequest;

/// Opens the state store (again, while it is held by the previous process).
pub type Opener = Box<dyn Fn() -> Result<Arc<dyn StateStore>, StoreError> + Send + Sync>;

/// The key, in a task's own details (`GatewayTask::details`), listing details the gateway
/// added to the client's request: they are not shown.
pub const HIDDEN_DETAILS: &str = "_miroir_hidden";

/// A task that finished, for the webhooks: its view, and the webhooks there were just before
/// it was stored finished (`None`: not known, those there when it is sent). A webhook made
/// once a client could see the task finished is not called for it, as on a node, which
/// reads its webhooks when its batch ends.
pub struct Finished {
    pub view: Value,
    pub hooks: Option<Vec<uuid::Uuid>>,
}

/// The task store plus the set of tasks not final yet.
///
/// The store file can be held by the previous process during a graceful upgrade (it
/// finishes its in-flight requests first): until it is released, task operations answer
/// with a busy [`StoreError`] and the store is opened at the next use.
pub struct TaskService {
    open: Opener,
    store: OnceLock<Arc<dyn StateStore>>,
    pending: Mutex<BTreeSet<u64>>,
    /// Nodes with missed writes to replay ([`handoff`]).
    lagging: Mutex<BTreeSet<String>>,
    /// Told of every task progress before it is stored, so no client sees a write done and
    /// then a cached answer from before it.
    cache: std::sync::Arc<SearchCache>,
    /// Told of every task that finishes (the webhooks' calls).
    finished: Option<tokio::sync::mpsc::UnboundedSender<Finished>>,
    /// Tasks kept at most ([`prune`]).
    max_tasks: u64,
    /// This gateway, as a lease holder of a shared store.
    holder: String,
    /// Whether the store failed the last background round.
    store_down: AtomicBool,
    /// The other gateways of a shared store, as last announced.
    peers: Mutex<Vec<crate::state::peers::Peer>>,
    /// The clients' `maxValuesPerFacet` by index, with when each was read.
    facet_values: Mutex<FacetValues>,
}

type FacetValues = HashMap<String, (std::time::Instant, Option<u64>)>;

/// How long a gateway on a shared store trusts a `maxValuesPerFacet` it read: another
/// gateway's change shows in searches through this one within it.
const FACET_VALUES_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// How long the background lease lasts unless renewed: a gateway that stops is replaced
/// within it.
const BACKGROUND_LEASE: std::time::Duration = std::time::Duration::from_secs(5);

/// A task's last view, or the one its record alone gives.
fn view_of(task: &GatewayTask) -> Value {
    task.view
        .clone()
        .unwrap_or_else(|| aggregate::aggregate(task, &[]))
}

impl TaskService {
    /// Opens the embedded store in `dir` (or leaves it to be opened later if another process
    /// holds it) and finds the tasks still in progress.
    pub fn open(dir: &Path) -> Result<TaskService, StoreError> {
        let dir = dir.to_path_buf();
        TaskService::open_with(Box::new(move || {
            TaskStore::open(&dir).map(|s| Arc::new(s) as Arc<dyn StateStore>)
        }))
    }

    /// Opens the store `open` gives and finds the tasks still in progress.
    pub fn open_with(open: Opener) -> Result<TaskService, StoreError> {
        let service = TaskService {
            open,
            store: OnceLock::new(),
            pending: Mutex::new(BTreeSet::new()),
            lagging: Mutex::new(BTreeSet::new()),
            cache: std::sync::Arc::new(SearchCache::off()),
            finished: None,
            max_tasks: 1_000_000,
            holder: uuid::Uuid::new_v4().to_string(),
            store_down: AtomicBool::new(false),
            peers: Mutex::new(Vec::new()),
            facet_values: Mutex::new(HashMap::new()),
        };
        match service.store() {
            Ok(_) => {}
            Err(e) if e.is_busy() || e.is_unavailable() => {
                log::warn!("{e}; it is opened again on next use")
            }
            Err(e) => return Err(e),
        }
        Ok(service)
    }

    /// Makes the search cache forget answers of an index as its writes progress.
    pub fn with_cache(mut self, cache: std::sync::Arc<SearchCache>) -> TaskService {
        self.cache = cache;
        self
    }

    /// Tells `finished` of every task that finishes.
    pub fn with_finished(
        mut self,
        finished: tokio::sync::mpsc::UnboundedSender<Finished>,
    ) -> TaskService {
        self.finished = Some(finished);
        self
    }

    /// Keeps at most `max_tasks` tasks ([`prune`]).
    pub fn with_max_tasks(mut self, max_tasks: u64) -> TaskService {
        self.max_tasks = max_tasks;
        self
    }

    /// Waits (up to `within`) for the store, e.g. while the previous process of a graceful
    /// upgrade finishes its last requests; whether it is available.
    pub async fn ready(&self, within: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        loop {
            match self.store() {
                Ok(_) => return true,
                Err(e) if e.is_busy() && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await
                }
                Err(_) => return false,
            }
        }
    }

    /// The store, opened on first success.
    fn store(&self) -> Result<&dyn StateStore, StoreError> {
        if let Some(store) = self.store.get() {
            return Ok(store.as_ref());
        }
        let store = (self.open)()?;
        let pending = store.index()?.unfinished();
        self.pending().extend(pending.iter());
        let lagging = store.hint_counts()?;
        self.lagging().extend(lagging.into_keys());
        let store = self.store.get_or_init(|| store);
        // Writes in flight when the previous process stopped are completed first.
        match self.recover_writes() {
            Ok(0) => {}
            Ok(n) => log::warn!("{n} write(s) interrupted by a stop are being completed"),
            Err(e) => log::error!("interrupted writes could not be recovered: {e}"),
        }
        Ok(store.as_ref())
    }

    fn lagging(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.lagging.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, BTreeSet<u64>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a new task; `build` receives its uid.
    pub fn create(
        &self,
        build: impl FnOnce(u64) -> GatewayTask,
    ) -> Result<GatewayTask, StoreError> {
        let store = self.store()?;
        let mut task = build(store.reserve_uids(1)?);
        let settled =
            task.error.is_some() || (task.node_tasks.is_empty() && task.awaiting.is_empty());
        if settled {
            // Settled by the gateway: its view is final at once.
            task.view = Some(aggregate::aggregate(&task, &[]));
        }
        store.put(&task)?;
        if !settled {
            self.pending().insert(task.uid);
        }
        Ok(task)
    }

    /// Stores `n` new tasks at once, with no fsync per task (bulk loads: benchmarks).
    pub fn create_many(
        &self,
        n: usize,
        build: impl FnMut(u64) -> GatewayTask,
    ) -> Result<(), StoreError> {
        let store = self.store()?;
        let first = store.reserve_uids(n as u64)?;
        let tasks: Vec<GatewayTask> = (first..first + n as u64).map(build).collect();
        store.put_many(&tasks)
    }

    /// Stored tasks and the size of the store on disk in bytes (0 where unknown).
    pub fn footprint(&self) -> (u64, u64) {
        let size = self.store().ok().and_then(|s| s.size_bytes()).unwrap_or(0);
        (self.count(), size)
    }

    /// Whether this gateway does the background work (polling tasks, replaying hints,
    /// pruning): always with an embedded store, the lease holder's with a shared one.
    pub fn leads_background(&self) -> bool {
        let lease = self
            .store()
            .and_then(|s| s.lease("background", &self.holder, BACKGROUND_LEASE));
        // Said once when the store goes away and once when it is back, not every round.
        let was_down = self.store_down.swap(lease.is_err(), Ordering::Relaxed);
        match lease {
            Ok(held) => {
                if was_down {
                    log::info!("the state store answers again");
                }
                held
            }
            Err(e) => {
                if !was_down {
                    log::warn!("{e}");
                }
                false
            }
        }
    }

    /// Says which topology this gateway desires and keeps what the other gateways of a
    /// shared store desire; how many of them disagree (a line in the log when that changes).
    pub fn announce(&self, topology: &str) -> usize {
        let Ok(peers) = self
            .store()
            .and_then(|s| s.announce(&self.holder, topology, crate::state::peers::LIVE))
        else {
            return 0;
        };
        let disagreeing: Vec<&crate::state::peers::Peer> =
            peers.iter().filter(|p| p.topology != topology).collect();
        let mut known = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let before = known.iter().filter(|p| p.topology != topology).count();
        if disagreeing.len() != before {
            match disagreeing.first() {
                Some(other) => log::warn!(
                    "{} other gateway(s) on the shared state desire another topology (e.g. gateway {}: {}); this one desires {topology}. Give them the same [cluster] and [[nodes]].",
                    disagreeing.len(),
                    other.gateway,
                    other.topology
                ),
                None => log::info!("every gateway on the shared state desires the same topology"),
            }
        }
        let count = disagreeing.len();
        *known = peers;
        count
    }

    /// The other gateways of a shared store running now (asked of the store, and saying that
    /// this one desires `topology`); none with an embedded store.
    pub fn live_peers(&self, topology: &str) -> Result<Vec<String>, StoreError> {
        let store = self.store()?;
        if !store.shared() {
            return Ok(Vec::new());
        }
        let peers = store.announce(&self.holder, topology, crate::state::peers::LIVE)?;
        Ok(peers.into_iter().map(|p| p.gateway).collect())
    }

    /// The other gateways of a shared store, as last announced.
    pub fn peers(&self) -> Vec<crate::state::peers::Peer> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Keeps `task` in the refresher's set while its view can still change.
    pub(crate) fn track(&self, task: &GatewayTask) {
        if task.is_final() {
            self.pending().remove(&task.uid);
        } else {
            self.pending().insert(task.uid);
        }
    }

    /// Forgets tasks other gateways of a shared store have seen finish (this one tracks only
    /// those it created or refreshed).
    pub fn forget_finished(&self) {
        let Ok(unfinished) = self.store().and_then(|s| Ok(s.index()?.unfinished())) else {
            return;
        };
        self.pending().retain(|uid| unfinished.contains(*uid));
    }

    /// Nodes that tasks still in progress wait on (a node leaving the fleet stays reachable
    /// until they are known).
    pub fn nodes_awaited(&self) -> BTreeSet<String> {
        let uids: Vec<u64> = self.pending().iter().copied().collect();
        let Ok(store) = self.store() else {
            return BTreeSet::new();
        };
        uids.into_iter()
            .filter_map(|uid| store.get(uid).ok().flatten())
            .flat_map(|t| {
                t.node_tasks
                    .into_iter()
                    .map(|n| n.node)
                    .chain(t.awaiting)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Every stored task, oldest first (tests and benchmarks: it reads the whole store).
    pub fn read_all(&self) -> Result<Vec<GatewayTask>, StoreError> {
        self.store()?.all()
    }

    /// The indexes of tasks not finished yet; `None` when one of them concerns no single
    /// index (a swap: any index may be changing).
    pub fn unfinished_indexes(&self) -> Option<BTreeSet<String>> {
        let store = self.store().ok()?;
        let uids: Vec<u64> = self.pending().iter().copied().collect();
        let mut out = BTreeSet::new();
        for uid in uids {
            let Ok(Some(task)) = store.get(uid) else {
                continue;
            };
            out.insert(task.index_uid?);
        }
        Some(out)
    }

    /// The `maxValuesPerFacet` the client of `index` asked for, when the nodes keep more.
    ///
    /// Every search asks, so the answer is kept: for good with an embedded store (this
    /// gateway makes every change), for [`FACET_VALUES_TTL`] with a shared one.
    pub fn client_facet_values(&self, index: &str) -> Option<u64> {
        let Ok(store) = self.store() else {
            return None;
        };
        if let Some((at, value)) = self.facet_values().get(index) {
            if !store.shared() || at.elapsed() < FACET_VALUES_TTL {
                return *value;
            }
        }
        let value = store.facet_values(index).ok()?;
        self.facet_values()
            .insert(index.to_string(), (std::time::Instant::now(), value));
        value
    }

    fn facet_values(&self) -> std::sync::MutexGuard<'_, FacetValues> {
        self.facet_values.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the client's `maxValuesPerFacet` of `index` (`None`: forgotten).
    pub fn set_client_facet_values(
        &self,
        index: &str,
        value: Option<u64>,
    ) -> Result<(), StoreError> {
        self.store()?.set_facet_values(index, value)?;
        self.facet_values()
            .insert(index.to_string(), (std::time::Instant::now(), value));
        Ok(())
    }

    /// Records (`true`) or forgets that the API key `uid` was deleted through the gateway.
    pub fn set_key_tombstone(&self, uid: &str, deleted: bool) -> Result<(), StoreError> {
        self.store()?.set_key_tombstone(uid, deleted)
    }

    /// The uids of the API keys deleted through the gateway.
    pub fn key_tombstones(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        self.store()?.key_tombstones()
    }

    /// Every webhook, `(uuid, JSON)`.
    pub fn webhooks(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.store()?.webhooks()
    }

    /// The webhooks there are now; `None` if the store does not say.
    fn webhook_uuids(&self) -> Option<Vec<uuid::Uuid>> {
        let hooks = self.webhooks().ok()?;
        Some(hooks.iter().filter_map(|(u, _)| u.parse().ok()).collect())
    }

    /// Stores (or, with `None`, deletes) the webhook `uuid`.
    pub fn set_webhook(&self, uuid: &str, json: Option<&[u8]>) -> Result<(), StoreError> {
        self.store()?.set_webhook(uuid, json)
    }

    /// The state store, for the other parts of the gateway that keep state in it (aliases).
    pub fn state(&self) -> Result<&dyn StateStore, StoreError> {
        self.store()
    }

    /// This gateway's id among the gateways of a shared store.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Tasks in the store.
    pub fn count(&self) -> u64 {
        self.store().and_then(|s| s.len()).unwrap_or(0)
    }

    /// Asks the nodes about `tasks` (one request per node) and stores the new views.
    pub async fn refresh(&self, cluster: &Cluster<'_>, tasks: &mut [GatewayTask]) {
        let mut wanted: HashMap<String, Vec<u64>> = HashMap::new();
        for t in tasks.iter().filter(|t| !t.is_final()) {
            for r in &t.node_tasks {
                wanted.entry(r.node.clone()).or_default().push(r.uid);
            }
        }
        let requests: Vec<_> = wanted
            .iter()
            .filter_map(|(node, uids)| {
                let idx = cluster.topology.node_by_id(node)?;
                let list: Vec<String> = uids.iter().map(u64::to_string).collect();
                let path = format!("/tasks?uids={}&limit={}", list.join(","), uids.len());
                Some((idx, cluster.own_request(NodeRequest::get(path))))
            })
            .collect();
        let mut known: HashMap<(String, u64), Value> = HashMap::new();
        for (idx, result) in cluster.send_each(requests).await {
            let Ok(resp) = result else { continue };
            if resp.status != 200 {
                continue;
            }
            let Ok(body) = serde_json::from_slice::<Value>(&resp.body) else {
                continue;
            };
            let node = cluster.topology.nodes[idx].id.clone();
            for view in body["results"].as_array().into_iter().flatten() {
                if let Some(uid) = view["uid"].as_u64() {
                    known.insert((node.clone(), uid), view.clone());
                }
            }
        }
        for t in tasks.iter_mut().filter(|t| !t.is_final()) {
            let views: Vec<Option<Value>> = t
                .node_tasks
                .iter()
                .map(|r| known.get(&(r.node.clone(), r.uid)).cloned())
                .collect();
            let view = aggregate::aggregate(t, &views);
            let mut finished_here = false;
            let mut hooks = None;
            if t.view.as_ref() != Some(&view) {
                // A task of no single index (a swap, ...) may change any.
                self.cache.invalidate(t.index_uid.as_deref());
                t.view = Some(view);
                if t.is_final() && self.finished.is_some() {
                    hooks = self.webhook_uuids();
                }
                match self.store().and_then(|s| s.update(t)) {
                    Ok(done) => finished_here = done,
                    Err(e) => log::error!("{e}"),
                }
            }
            if t.is_final() {
                self.pending().remove(&t.uid);
            }
            // Told once: a task finishes once, whichever refresh (or gateway) stored it.
            if finished_here {
                if let (Some(finished), Some(view)) = (&self.finished, &t.view) {
                    let view = view.clone();
                    let _ = finished.send(Finished { view, hooks });
                }
            }
        }
    }

    /// Refreshes every task still in progress (the background refresher).
    pub async fn refresh_pending(&self, cluster: &Cluster<'_>) {
        // Also (re)opens a store the previous process has just released.
        let Ok(store) = self.store() else { return };
        // Tasks other gateways of a shared store created are in the index only.
        let mut uids = match store.index() {
            Ok(index) => index.unfinished(),
            Err(e) => return log::warn!("{e}"),
        };
        uids.extend(self.pending().iter().copied());
        let Ok(mut tasks) = store.tasks(&mut uids.iter()) else {
            return;
        };
        for chunk in tasks.chunks_mut(200) {
            self.refresh(cluster, chunk).await;
        }
    }

    /// The view of task `uid`, fresh from the nodes if it is not final.
    pub async fn view(&self, cluster: &Cluster<'_>, uid: u64) -> Result<Option<Value>, StoreError> {
        let Some(task) = self.store()?.get(uid)? else {
            return Ok(None);
        };
        let mut tasks = [task];
        self.refresh(cluster, &mut tasks).await;
        let [task] = tasks;
        Ok(Some(
            task.view
                .clone()
                .unwrap_or_else(|| aggregate::aggregate(&task, &[])),
        ))
    }

    /// Tasks matching `filter`, newest first unless `reverse`, from `from` on; a page shows
    /// only tasks `scope` allows while `total` counts them all, as a node does.
    ///
    /// The index selects the tasks, so a page reads only its own tasks; date filters are the
    /// exception: they read every task the other filters select.
    pub async fn list(
        &self,
        cluster: &Cluster<'_>,
        filter: &TaskFilter,
        scope: &Scope,
    ) -> Result<Value, StoreError> {
        // Tasks in progress are refreshed first: their status decides what matches.
        self.refresh_pending(cluster).await;
        let store = self.store()?;
        let (mut selected, visible) = {
            let index = store.index()?;
            (index.select(filter), index.visible(scope))
        };
        if !filter.dates.is_empty() {
            selected = store
                .tasks(&mut selected.iter())?
                .iter()
                .filter(|t| filter.matches(&view_of(t)))
                .map(|t| t.uid)
                .collect();
        }
        let total = selected.len();
        if let Some(visible) = visible {
            selected &= visible;
        }
        index::from_on(&mut selected, filter.from, filter.reverse);
        let wanted = filter.limit.saturating_add(1);
        let uids: Vec<u64> = if filter.reverse {
            selected.iter().take(wanted).collect()
        } else {
            selected.iter().rev().take(wanted).collect()
        };
        let mut page: Vec<Value> = store
            .tasks(&mut uids.into_iter())?
            .iter()
            .map(view_of)
            .collect();
        let next = if page.len() > filter.limit {
            page.pop().and_then(|v| v["uid"].as_u64())
        } else {
            None
        };
        let from = page.first().and_then(|v| v["uid"].as_u64());
        Ok(json!({
            "results": page,
            "total": total,
            "limit": filter.limit,
            "from": from,
            "next": next,
        }))
    }

    /// Stored tasks, finished ones or the others, that `filter` selects and `scope` allows.
    fn matching(
        &self,
        filter: &TaskFilter,
        scope: &Scope,
        finished: bool,
    ) -> Result<Vec<GatewayTask>, StoreError> {
        let store = self.store()?;
        let selected = {
            let index = store.index()?;
            let mut selected = index.select(filter);
            selected &= if finished {
                index.finished()
            } else {
                index.unfinished()
            };
            if let Some(visible) = index.visible(scope) {
                selected &= visible;
            }
            selected
        };
        Ok(store
            .tasks(&mut selected.iter())?
            .into_iter()
            .filter(|t| t.is_final() == finished)
            .filter(|t| {
                let view = view_of(t);
                filter.matches(&view) && scope.allows_task(&view)
            })
            .collect())
    }

    /// Finished tasks matching `filter` that `scope` allows (deletion only removes those).
    pub fn finished_matching(
        &self,
        filter: &TaskFilter,
        scope: &Scope,
    ) -> Result<Vec<GatewayTask>, StoreError> {
        self.matching(filter, scope, true)
    }

    /// Tasks in progress matching `filter` that `scope` allows (cancelation only touches
    /// those).
    pub fn unfinished_matching(
        &self,
        filter: &TaskFilter,
        scope: &Scope,
    ) -> Result<Vec<GatewayTask>, StoreError> {
        self.matching(filter, scope, false)
    }

    pub fn delete(&self, uids: &[u64]) -> Result<(), StoreError> {
        self.store()?.delete(uids)
    }

    pub fn put(&self, task: &GatewayTask) -> Result<(), StoreError> {
        self.store()?.put(task)
    }

    /// The first `limit` writes recorded for a moving shard, oldest first.
    pub fn move_log(
        &self,
        move_id: u64,
        limit: usize,
    ) -> Result<Vec<(MoveLogKey, Vec<u8>)>, StoreError> {
        self.store()?.move_log(move_id, limit)
    }

    pub fn move_log_len(&self, move_id: u64) -> Result<u64, StoreError> {
        self.store()?.move_log_len(move_id)
    }

    /// Forgets a move's recorded writes up to `through`, or all of them.
    pub fn move_log_drop(
        &self,
        move_id: u64,
        through: Option<MoveLogKey>,
    ) -> Result<(), StoreError> {
        self.store()?.move_log_drop(move_id, through)
    }

    pub fn get(&self, uid: u64) -> Result<Option<GatewayTask>, StoreError> {
        self.store()?.get(uid)
    }
}
