//! Task history at scale: `GET /tasks` over a store of a million finished tasks (set
//! `MIROIR_BENCH_TASKS` for another count), through `TaskService::list` as the route calls
//! it, beside a baseline that reads and decodes every stored task and filters their views
//! (what listing did before the store kept an index); the same listings with the state in
//! Redis. Then the store's file size while writes keep coming and pruning keeps the history
//! at its bound.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use miroir::auth::Scope;
use miroir::state::redis::{RedisSettings, RedisStore};
use miroir::state::StateStore;
use miroir::tasks::{GatewayTask, NodeTaskRef, TaskFilter, TaskService};
use miroir::transport::scripted::TestFleet;
use serde_json::{json, Value};

const INDEXES: usize = 20;

fn task_count() -> usize {
    std::env::var("MIROIR_BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// A finished task as the gateway stores it: three node tasks and the view a node's answers
/// made; one in fifty failed, one in ten a settings update.
fn finished_task(uid: u64) -> GatewayTask {
    let index = format!("index-{}", uid as usize % INDEXES);
    let (kind, details) = if uid % 10 == 0 {
        ("settingsUpdate", json!({"filterableAttributes": ["genre"]}))
    } else {
        (
            "documentAdditionOrUpdate",
            json!({"receivedDocuments": 1000, "indexedDocuments": 1000}),
        )
    };
    let failed = uid % 50 == 7;
    let view: Value = json!({
        "uid": uid, "batchUid": uid, "indexUid": index,
        "status": if failed { "failed" } else { "succeeded" },
        "type": kind, "canceledBy": null, "details": details,
        "error": if failed {
            json!({"message": "Document doesn't have a `id` attribute.", "code": "missing_document_id",
                   "type": "invalid_request", "link": "https://docs.meilisearch.com/errors#missing_document_id"})
        } else { Value::Null },
        "duration": "PT0.412S", "enqueuedAt": "2026-11-02T10:00:00.123456789Z",
        "startedAt": "2026-11-02T10:00:00.2Z", "finishedAt": "2026-11-02T10:00:00.612Z",
    });
    GatewayTask {
        uid,
        index_uid: Some(index),
        kind: kind.into(),
        enqueued_at: "2026-11-02T10:00:00.123456789Z".into(),
        custom_metadata: None,
        copies: 1,
        node_tasks: (0..3)
            .map(|n| NodeTaskRef {
                node: format!("a{n}"),
                uid: uid * 3 + n,
                internal: false,
            })
            .collect(),
        details: None,
        error: None,
        canceled_by: None,
        view: Some(view),
        awaiting: Vec::new(),
    }
}

fn scratch(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("miroir-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Stores `n` finished tasks, a hundred thousand per transaction.
fn fill(tasks: &TaskService, n: usize) {
    let mut left = n;
    while left > 0 {
        let batch = left.min(100_000);
        tasks.create_many(batch, finished_task).expect("bulk load");
        left -= batch;
    }
}

fn listing(c: &mut Criterion) {
    let dir = scratch("tasks");
    let tasks = TaskService::open(&dir).expect("store");
    list_queries(c, "embedded", &tasks, true);
    drop(tasks);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same listings with the state in Redis (a `redis-server` of the benchmark's own, when
/// one is on PATH): the index is in the gateway, the page's tasks come from Redis.
fn listing_redis(c: &mut Criterion) {
    let Some(server) = RedisServer::start() else {
        println!("no redis-server on PATH: the Redis backend is not measured");
        return;
    };
    let settings = RedisSettings {
        url: format!("redis://127.0.0.1:{}", server.port),
        password: None,
        prefix: "bench:".into(),
        timeout: Duration::from_secs(30),
    };
    let tasks = TaskService::open_with(Box::new(move || {
        RedisStore::open(&settings).map(|s| Arc::new(s) as Arc<dyn StateStore>)
    }))
    .expect("store");
    list_queries(c, "redis", &tasks, false);
}

/// A `redis-server` on a free loopback port, without persistence; stopped on drop.
struct RedisServer {
    child: std::process::Child,
    port: u16,
}

impl RedisServer {
    fn start() -> Option<RedisServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(RedisServer { child, port })
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fills `tasks` and measures the listings (and, with `baseline`, reading every task).
fn list_queries(c: &mut Criterion, backend: &str, tasks: &TaskService, baseline: bool) {
    let n = task_count();
    fill(tasks, n);
    let fleet = TestFleet::new(&["a"], 3, 8, None);
    let topology = fleet.fleet.topology.snapshot();
    let cluster = fleet.fleet.cluster(&topology);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let queries = [
        ("latest 20", "limit=20"),
        (
            "failed of one index",
            "statuses=failed&indexUids=index-7&limit=20",
        ),
        (
            "page deep in history",
            "types=settingsUpdate&from=500000&limit=20",
        ),
    ];
    let mut group = c.benchmark_group(format!("tasks list ({n} stored, {backend})"));
    group.sample_size(20);
    for (name, query) in queries {
        let filter = TaskFilter::parse(query);
        let page = rt
            .block_on(tasks.list(&cluster, &filter, &Scope::ALL))
            .expect("list");
        assert_eq!(page["results"].as_array().map(Vec::len), Some(20), "{name}");
        group.bench_function(format!("indexed: {name}"), |b| {
            b.iter(|| rt.block_on(tasks.list(&cluster, &filter, &Scope::ALL)))
        });
    }
    if !baseline {
        group.finish();
        return;
    }
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    let filter = TaskFilter::parse("limit=20");
    group.bench_function("baseline: read every task, latest 20", |b| {
        b.iter(|| {
            let mut all = tasks.read_all().expect("read");
            all.reverse();
            let page: Vec<&Value> = all
                .iter()
                .filter_map(|t| t.view.as_ref())
                .filter(|v| filter.matches(v))
                .take(20)
                .collect();
            page.len()
        })
    });
    group.finish();
}

/// Writes keep coming (a tenth of the bound at a time) while pruning keeps the history at
/// its bound: the store's file stops growing once pruning has begun.
fn bounded_store(_: &mut Criterion) {
    let bound = (task_count() / 5).max(10_000) as u64;
    let dir = scratch("bounded");
    let tasks = TaskService::open(&dir)
        .expect("store")
        .with_max_tasks(bound);
    let fleet = TestFleet::new(&["a"], 3, 8, None);
    let topology = fleet.fleet.topology.snapshot();
    let cluster = fleet.fleet.cluster(&topology);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("store under sustained writes, bound {bound} tasks:");
    for round in 1..=15 {
        fill(&tasks, bound as usize / 10);
        let pruned = rt.block_on(tasks.prune(&cluster));
        let (stored, bytes) = tasks.footprint();
        println!(
            "  after {:>7} writes: {stored:>7} tasks stored, {:>6.1} MiB on disk{}",
            round * bound / 10,
            bytes as f64 / (1 << 20) as f64,
            if pruned > 0 {
                format!(" ({pruned} pruned)")
            } else {
                String::new()
            }
        );
    }
    drop(tasks);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, listing, listing_redis, bounded_store);
criterion_main!(benches);
