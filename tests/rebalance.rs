//! Online rebalancing, end to end: grow a fleet from three nodes to four, shrink it back to
//! three, then replace a node, each by a reload while a writer keeps writing and readers keep
//! reading; and kill the gateway in the middle of a copy and of a replay.
//!
//! After each step settles: every document the writer was acknowledged is found through
//! Miroir with the same content, none twice; each node holds exactly the shards the effective
//! placement gives it (counted on the nodes directly); no read failed or came back short.
//!
//! Runs on the test nodes of `support::fake_meili` (always) and on real Meilisearch when a
//! binary is found (`PATH` or `MEILI_BIN`). One node refuses `/export` to loopback, so both
//! copies run: node to node and through the gateway.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::fake_node::FakeNode;
use support::gateway::{Extra, GatewayProcess, NodeEntry};
use support::meili::{self, MeiliNode};
use support::meili_api::Api;

const KEY: &str = "rebalance-master-key-0123456789";
const MOVIES: u64 = 6_000;
const BOOKS: u64 = 4_000;
/// Movies below this id are the writer's; the others never change (the readers count them).
const HOT: u64 = 1_000;

/// A node of either kind.
enum TestNode {
    Fake(FakeNode),
    Real(MeiliNode),
}

impl TestNode {
    fn url(&self) -> String {
        match self {
            TestNode::Fake(n) => n.url(),
            TestNode::Real(n) => n.url(),
        }
    }

    fn addr(&self) -> std::net::SocketAddr {
        match self {
            TestNode::Fake(n) => n.addr,
            TestNode::Real(n) => n.addr,
        }
    }

    async fn kill_and_restart(&mut self, down_for: Duration) {
        match self {
            TestNode::Fake(n) => {
                n.stop();
                tokio::time::sleep(down_for).await;
                n.restart().await;
            }
            TestNode::Real(n) => {
                n.kill();
                tokio::time::sleep(down_for).await;
                n.restart().await;
            }
        }
    }
}

/// Five nodes `n1`..`n5`; `n1` may not export to loopback addresses.
async fn start_nodes(bin: Option<&std::path::PathBuf>) -> Vec<TestNode> {
    let mut nodes = Vec::new();
    for i in 1..=5 {
        let name = format!("n{i}");
        let node = match bin {
            Some(bin) => {
                let args: &[&str] = if i == 1 {
                    &[]
                } else {
                    &["--experimental-allowed-ip-networks", "127.0.0.0/8"]
                };
                TestNode::Real(MeiliNode::start_with(bin, KEY, args).await)
            }
            None if i == 1 => TestNode::Fake(FakeNode::start(&name, Some(KEY)).await),
            None => {
                TestNode::Fake(FakeNode::start_allowing(&name, Some(KEY), &["127.0.0.0/8"]).await)
            }
        };
        nodes.push(node);
    }
    nodes
}

fn entries(nodes: &[TestNode], which: &[usize]) -> Vec<NodeEntry> {
    which
        .iter()
        .map(|&i| NodeEntry::new(&format!("n{}", i + 1), &nodes[i].url(), "a"))
        .collect()
}

fn movie(id: u64, version: u64) -> Value {
    let genre = ["drama", "comedy", "horror"][(id % 3) as usize];
    json!({
        "id": id,
        "sku": format!("sku-{id}"),
        "title": format!("movie {id} v{version}"),
        "genre": genre,
        "year": 1950 + id % 70,
        "cold": id >= HOT,
    })
}

/// Creates the two indexes with settings and fills them.
async fn load(api: &mut Api) {
    let settings = json!({
        "filterableAttributes": ["genre", "year", "cold"],
        "sortableAttributes": ["year"],
        "distinctAttribute": "sku",
        "synonyms": {"film": ["movie"]},
    });
    let task = api
        .write(
            "PATCH",
            "/indexes/movies/settings",
            Some("application/json"),
            settings.to_string().as_bytes(),
        )
        .await;
    assert_eq!(task["status"], "succeeded", "{task}");
    let settings = json!({"filterableAttributes": ["author"], "sortableAttributes": ["pages"]});
    let task = api
        .write(
            "PATCH",
            "/indexes/books/settings",
            Some("application/json"),
            settings.to_string().as_bytes(),
        )
        .await;
    assert_eq!(task["status"], "succeeded", "{task}");
    for start in (0..MOVIES).step_by(2_000) {
        let docs: Vec<Value> = (start..start + 2_000).map(|id| movie(id, 0)).collect();
        let body = serde_json::to_vec(&docs).unwrap();
        let task = api
            .write(
                "POST",
                "/indexes/movies/documents?primaryKey=id",
                Some("application/json"),
                &body,
            )
            .await;
        assert_eq!(task["status"], "succeeded", "{task}");
    }
    let books: Vec<Value> = (0..BOOKS)
        .map(|id| json!({"isbn": format!("isbn-{id}"), "author": format!("author {}", id % 50), "pages": id % 900}))
        .collect();
    let task = api
        .write(
            "POST",
            "/indexes/books/documents?primaryKey=isbn",
            Some("application/json"),
            &serde_json::to_vec(&books).unwrap(),
        )
        .await;
    assert_eq!(task["status"], "succeeded", "{task}");
}

/// What the writer was acknowledged, per movie id (`None`: deleted), and its tasks.
#[derive(Default)]
struct Ledger {
    movies: BTreeMap<u64, Option<Value>>,
    tasks: Vec<u64>,
    refused: Vec<String>,
}

impl Ledger {
    /// The writer's movies as loaded.
    fn new() -> Ledger {
        Ledger {
            movies: (0..HOT).map(|id| (id, Some(movie(id, 0)))).collect(),
            ..Ledger::default()
        }
    }
}

/// What an acknowledged write does to the ledger.
type Effect = Box<dyn Fn(&mut Ledger) + Send>;

/// Upserts, partial updates and deletes on the hot movies, in a loop, waiting for some.
async fn writer(addr: std::net::SocketAddr, ledger: Arc<Mutex<Ledger>>, stop: Arc<AtomicBool>) {
    let mut api = Api::new(addr, Some(KEY));
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let base = (round * 37) % HOT;
        let (method, path, body, effect): (&str, String, Value, Effect) = match round % 4 {
            0 | 1 => {
                let ids: Vec<u64> = (0..10).map(|k| (base + k * 7) % HOT).collect();
                let docs: Vec<Value> = ids.iter().map(|&id| movie(id, round)).collect();
                let docs2 = docs.clone();
                (
                    "POST",
                    "/indexes/movies/documents".into(),
                    Value::Array(docs),
                    Box::new(move |l: &mut Ledger| {
                        for d in &docs2 {
                            l.movies.insert(d["id"].as_u64().unwrap(), Some(d.clone()));
                        }
                    }),
                )
            }
            2 => {
                let ids: Vec<u64> = (0..5).map(|k| (base + k * 11) % HOT).collect();
                let docs: Vec<Value> = ids
                    .iter()
                    .map(|&id| json!({"id": id, "rating": round}))
                    .collect();
                (
                    "PUT",
                    "/indexes/movies/documents".into(),
                    Value::Array(docs),
                    Box::new(move |l: &mut Ledger| {
                        for &id in &ids {
                            let entry = l.movies.entry(id).or_insert(None);
                            match entry {
                                Some(doc) => doc["rating"] = json!(round),
                                None => *entry = Some(json!({"id": id, "rating": round})),
                            }
                        }
                    }),
                )
            }
            _ => {
                let ids: Vec<u64> = (0..3).map(|k| (base + k * 13) % HOT).collect();
                (
                    "POST",
                    "/indexes/movies/documents/delete-batch".into(),
                    json!(ids),
                    Box::new(move |l: &mut Ledger| {
                        for &id in &ids {
                            l.movies.insert(id, None);
                        }
                    }),
                )
            }
        };
        let resp = api
            .call(
                method,
                &path,
                Some("application/json"),
                body.to_string().as_bytes(),
            )
            .await;
        if resp.status != 202 {
            ledger.lock().unwrap().refused.push(format!(
                "{method} {path}: {} {}",
                resp.status,
                resp.text()
            ));
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let uid = resp.json()["taskUid"].as_u64().unwrap();
        {
            let mut l = ledger.lock().unwrap();
            effect(&mut l);
            l.tasks.push(uid);
        }
        if round % 5 == 0 {
            let task = api.wait(uid).await;
            assert_eq!(task["status"], "succeeded", "{task}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Searches and fetches that must never fail or come back short while shards move.
async fn reader(
    addr: std::net::SocketAddr,
    failures: Arc<Mutex<Vec<String>>>,
    reads: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let mut api = Api::new(addr, Some(KEY));
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let problem = match i % 3 {
            0 => {
                let body = json!({"q": "", "filter": "cold = true", "hitsPerPage": 1});
                let resp = api.json("POST", "/indexes/movies/search", &body).await;
                let total = resp.json()["totalHits"].as_u64();
                (resp.status != 200 || total != Some(MOVIES - HOT)).then(|| {
                    format!(
                        "{}cold movies: {} {:?} {}",
                        short(resp.status),
                        resp.status,
                        total,
                        resp.text()
                    )
                })
            }
            1 => {
                let resp = api
                    .json(
                        "POST",
                        "/indexes/books/search",
                        &json!({"q": "", "hitsPerPage": 1}),
                    )
                    .await;
                let total = resp.json()["totalHits"].as_u64();
                (resp.status != 200 || total != Some(BOOKS)).then(|| {
                    format!(
                        "{}books: {} {:?} {}",
                        short(resp.status),
                        resp.status,
                        total,
                        resp.text()
                    )
                })
            }
            _ => {
                let id = HOT + (i * 7919) % (MOVIES - HOT);
                let resp = api.get(&format!("/indexes/movies/documents/{id}")).await;
                let ok = resp.status == 200 && resp.json()["title"] == movie(id, 0)["title"];
                (!ok).then(|| {
                    format!(
                        "{}movie {id}: {} {}",
                        short(resp.status),
                        resp.status,
                        resp.text()
                    )
                })
            }
        };
        reads.fetch_add(1, Ordering::Relaxed);
        if let Some(p) = problem {
            failures.lock().unwrap().push(p);
        }
    }
}

/// A failure that answered 200 came back short (or wrong).
fn short(status: u16) -> &'static str {
    if status == 200 {
        "short "
    } else {
        ""
    }
}

/// Waits until the rebalance has no active move; the admin view.
async fn settle(api: &mut Api, gw: &GatewayProcess, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let view = api.get("/_miroir/rebalance").await.json();
        if view["active"] == 0 {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "rebalance did not finish: {view}\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every document of an index through the gateway, by id; fails on an id seen twice.
async fn browse(api: &mut Api, index: &str, key: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut offset = 0;
    loop {
        let page = api
            .get(&format!(
                "/indexes/{index}/documents?limit=1000&offset={offset}"
            ))
            .await;
        assert_eq!(page.status, 200, "{}", page.text());
        let page = page.json();
        let results = page["results"].as_array().unwrap().clone();
        for d in &results {
            let id = match &d[key] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert!(
                out.insert(id.clone(), d.clone()).is_none(),
                "{index}: {id} listed twice"
            );
        }
        offset += results.len();
        if results.is_empty() || offset as u64 >= page["total"].as_u64().unwrap() {
            return out;
        }
    }
}

/// The checks after a step: content, placement on the nodes, reads and writes.
async fn verify(step: &str, api: &mut Api, nodes: &[TestNode], ledger: &Mutex<Ledger>) {
    let tasks = ledger.lock().unwrap().tasks.clone();
    for uid in tasks {
        let task = api.wait(uid).await;
        assert_eq!(task["status"], "succeeded", "{step}: {task}");
    }
    let mut expected: BTreeMap<String, Value> = (HOT..MOVIES)
        .map(|id| (id.to_string(), movie(id, 0)))
        .collect();
    for (id, doc) in &ledger.lock().unwrap().movies {
        if let Some(d) = doc {
            expected.insert(id.to_string(), d.clone());
        }
    }
    check_nodes(step, api, nodes, expected.len() as u64).await;
    let movies = browse(api, "movies", "id").await;
    let missing: Vec<&String> = expected
        .keys()
        .filter(|k| !movies.contains_key(*k))
        .collect();
    let extra: Vec<&String> = movies
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    let differ: Vec<&String> = expected
        .iter()
        .filter(|(k, v)| movies.get(*k).is_some_and(|m| m != *v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differ.is_empty(),
        "{step}: {} missing {:?}, {} extra {:?}, {} differ {:?}",
        missing.len(),
        &missing[..missing.len().min(5)],
        extra.len(),
        &extra[..extra.len().min(5)],
        differ.len(),
        &differ[..differ.len().min(5)]
    );
    let books = browse(api, "books", "isbn").await;
    assert_eq!(books.len() as u64, BOOKS, "{step}: books");
}

/// Each node holds exactly the shards the placement gives it, and the nodes together hold
/// every document once.
async fn check_nodes(step: &str, api: &mut Api, nodes: &[TestNode], movies: u64) {
    // On the nodes: each holds exactly the shards the placement gives it.
    let topology = api.get("/_miroir/topology").await.json();
    let mut owner: BTreeMap<u64, String> = BTreeMap::new();
    for entry in topology["placement"].as_array().unwrap() {
        owner.insert(
            entry["shard"].as_u64().unwrap(),
            entry["owners"]["a"][0].as_str().unwrap().to_string(),
        );
    }
    let mut per_index_total: BTreeMap<&str, u64> = BTreeMap::new();
    for (i, node) in nodes.iter().enumerate() {
        let id = format!("n{}", i + 1);
        let mut direct = Api::new(node.addr(), Some(KEY));
        for index in ["movies", "books"] {
            for shard in 0..16u64 {
                let filter = miroir::shard_tag::filter(&[shard as u32]);
                let resp = direct
                    .json(
                        "POST",
                        &format!("/indexes/{index}/documents/fetch"),
                        &json!({"filter": filter, "limit": 0}),
                    )
                    .await;
                let count = if resp.status == 404 {
                    0
                } else {
                    assert_eq!(resp.status, 200, "{step}: {id} {index}: {}", resp.text());
                    resp.json()["total"].as_u64().unwrap()
                };
                let owns = owner.get(&shard) == Some(&id);
                if !owns {
                    assert_eq!(count, 0, "{step}: {id} holds {count} documents of shard {shard} of {index} it does not own");
                }
                *per_index_total.entry(index).or_default() += count;
            }
        }
    }
    assert_eq!(
        per_index_total["movies"], movies,
        "{step}: movies on the nodes"
    );
    assert_eq!(
        per_index_total["books"], BOOKS,
        "{step}: books on the nodes"
    );
}

struct Load {
    stop: Arc<AtomicBool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(
        addr: std::net::SocketAddr,
        ledger: &Arc<Mutex<Ledger>>,
        failures: &Arc<Mutex<Vec<String>>>,
        reads: &Arc<AtomicU64>,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = vec![tokio::spawn(writer(addr, ledger.clone(), stop.clone()))];
        for _ in 0..2 {
            handles.push(tokio::spawn(reader(
                addr,
                failures.clone(),
                reads.clone(),
                stop.clone(),
            )));
        }
        Load { stop, handles }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles {
            h.await.expect("load task");
        }
    }
}

async fn reload_to(gw: &GatewayProcess, nodes: &[TestNode], which: &[usize]) {
    gw.write_config(&entries(nodes, which), &Extra::default());
    gw.sighup();
    tokio::time::sleep(Duration::from_millis(500)).await;
}

async fn grow_shrink_replace(bin: Option<std::path::PathBuf>) {
    let nodes = start_nodes(bin.as_ref()).await;
    let env = [("MIROIR_MASTER_KEY", KEY)];
    let gw = GatewayProcess::start(&entries(&nodes, &[0, 1, 2]), &Extra::default(), &env).await;
    let mut api = Api::new(gw.addr, Some(KEY));
    load(&mut api).await;
    let ledger = Arc::new(Mutex::new(Ledger::new()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let reads = Arc::new(AtomicU64::new(0));

    let steps: [(&str, &[usize]); 3] = [
        ("grow to 4", &[0, 1, 2, 3]),
        ("shrink to 3", &[0, 2, 3]),
        ("replace n3 by n5", &[0, 3, 4]),
    ];
    for (step, which) in steps {
        let load = Load::start(gw.addr, &ledger, &failures, &reads);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        reload_to(&gw, &nodes, which).await;
        let view = settle(&mut api, &gw, Duration::from_secs(300)).await;
        let took = started.elapsed();
        load.stop().await;
        verify(step, &mut api, &nodes, &ledger).await;
        let moves = view["moves"].as_array().unwrap();
        let barrier = moves
            .iter()
            .filter_map(|m| m["barrierMs"].as_u64())
            .max()
            .unwrap_or(0);
        eprintln!(
            "{step}: {} moves done in {:.1} s, longest write barrier {barrier} ms, {} reads",
            moves.iter().filter(|m| m["phase"] == "done").count(),
            took.as_secs_f64(),
            reads.load(Ordering::Relaxed)
        );
        if std::env::var_os("REBALANCE_LOG").is_some() {
            for line in gw.log().lines().filter(|l| l.contains("rebalance:")) {
                eprintln!("  {line}");
            }
        }
        // Nodes that left are gone from the topology once drained.
        let topology = api.get("/_miroir/topology").await.json();
        let ids: Vec<&str> = topology["groups"][0]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap())
            .collect();
        let want: Vec<String> = which.iter().map(|i| format!("n{}", i + 1)).collect();
        assert_eq!(ids, want, "{step}: nodes of the topology");
    }
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} of {} reads failed or were short: {:?}",
        failures.len(),
        reads.load(Ordering::Relaxed),
        &failures[..failures.len().min(10)]
    );
    let refused = ledger.lock().unwrap().refused.clone();
    assert!(refused.is_empty(), "writes refused: {refused:?}");
    let via: Vec<String> = api.get("/_miroir/rebalance").await.json()["moves"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["via"].as_str().map(str::to_string))
        .collect();
    assert!(
        via.iter().any(|v| v == "export"),
        "some move copied node to node: {via:?}"
    );
    assert!(
        via.iter().any(|v| v == "gateway"),
        "n1's moves copied through the gateway: {via:?}"
    );
    drop(nodes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grow_shrink_and_replace_online_on_test_nodes() {
    grow_shrink_replace(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grow_shrink_and_replace_online_on_real_meilisearch() {
    let Some(bin) = meili::binary() else {
        meili::skip_notice("grow_shrink_and_replace_online_on_real_meilisearch");
        return;
    };
    grow_shrink_replace(Some(bin)).await;
}

/// Waits until some move is in `phase`.
async fn until_phase(api: &mut Api, phase: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let view = api.get("/_miroir/rebalance").await.json();
        if let Some(m) = view["moves"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["phase"] == phase)
        {
            return m.clone();
        }
        assert!(Instant::now() < deadline, "no move reached {phase}: {view}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn crashes(bin: Option<std::path::PathBuf>) {
    let mut nodes = start_nodes(bin.as_ref()).await;
    let env = [("MIROIR_MASTER_KEY", KEY)];
    let mut gw = GatewayProcess::start(&entries(&nodes, &[0, 1, 2]), &Extra::default(), &env).await;
    let mut api = Api::new(gw.addr, Some(KEY));
    load(&mut api).await;
    let ledger = Arc::new(Mutex::new(Ledger::new()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let reads = Arc::new(AtomicU64::new(0));

    // kill -9 during a copy, with writes recorded for the shard's new owner.
    let load = Load::start(gw.addr, &ledger, &failures, &reads);
    reload_to(&gw, &nodes, &[0, 1, 2, 3]).await;
    until_phase(&mut api, "copying", Duration::from_secs(60)).await;
    load.stop().await;
    gw.restart().await;
    let mut api = Api::new(gw.addr, Some(KEY));

    // kill -9 during a replay: paused, a move stops once it has its copy.
    let load = Load::start(gw.addr, &ledger, &failures, &reads);
    api.json("POST", "/_miroir/rebalance/pause", &json!({}))
        .await;
    until_phase(&mut api, "replaying", Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    load.stop().await;
    gw.restart().await;
    let mut api = Api::new(gw.addr, Some(KEY));
    let resp = api
        .json("POST", "/_miroir/rebalance/resume", &json!({}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());

    // The source of a copy dies and comes back.
    let load = Load::start(gw.addr, &ledger, &failures, &reads);
    if let Some(copying) = try_until_phase(&mut api, "copying", Duration::from_secs(60)).await {
        let from: usize = copying["from"].as_str().unwrap()[1..]
            .parse::<usize>()
            .unwrap()
            - 1;
        nodes[from].kill_and_restart(Duration::from_secs(2)).await;
    }
    settle(&mut api, &gw, Duration::from_secs(300)).await;
    load.stop().await;
    verify("after crashes", &mut api, &nodes, &ledger).await;
    // Reads of a killed node's shards fail while it is down (one copy per shard); none may
    // come back short.
    let short: Vec<String> = failures
        .lock()
        .unwrap()
        .iter()
        .filter(|f| f.starts_with("short"))
        .cloned()
        .collect();
    assert!(short.is_empty(), "short reads: {short:?}");
}

/// Waits until some move is in `phase`, if one gets there.
async fn try_until_phase(api: &mut Api, phase: &str, within: Duration) -> Option<Value> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let view = api.get("/_miroir/rebalance").await.json();
        if view["active"] == 0 {
            return None;
        }
        if let Some(m) = view["moves"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["phase"] == phase)
        {
            return Some(m.clone());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moves_resume_after_the_gateway_or_the_source_is_killed_on_test_nodes() {
    crashes(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moves_resume_after_the_gateway_or_the_source_is_killed_on_real_meilisearch() {
    let Some(bin) = meili::binary() else {
        meili::skip_notice(
            "moves_resume_after_the_gateway_or_the_source_is_killed_on_real_meilisearch",
        );
        return;
    };
    crashes(Some(bin)).await;
}

/// Canceling undoes the moves that have not changed owner: what reached the new node is
/// deleted, the shards stay where they were, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_canceled_rebalance_leaves_every_shard_where_it_was() {
    let nodes = start_nodes(None).await;
    let env = [("MIROIR_MASTER_KEY", KEY)];
    let gw = GatewayProcess::start(&entries(&nodes, &[0, 1, 2]), &Extra::default(), &env).await;
    let mut api = Api::new(gw.addr, Some(KEY));
    load(&mut api).await;
    let before = api.get("/_miroir/topology").await.json()["placement"].clone();
    let resp = api
        .json("POST", "/_miroir/rebalance/pause", &json!({}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    reload_to(&gw, &nodes, &[0, 1, 2, 3]).await;
    let view = api.get("/_miroir/rebalance").await.json();
    assert_eq!(view["paused"], true);
    assert!(view["active"].as_u64().unwrap() >= 3, "{view}");
    let resp = api
        .json("POST", "/_miroir/rebalance/cancel", &json!({}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = api
        .json("POST", "/_miroir/rebalance/resume", &json!({}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let view = settle(&mut api, &gw, Duration::from_secs(60)).await;
    assert!(
        view["moves"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["phase"] == "canceled"),
        "{view}"
    );
    let topology = api.get("/_miroir/topology").await.json();
    assert_eq!(topology["placement"], before, "no shard changed owner");
    let ledger = Mutex::new(Ledger::new());
    verify("after cancel", &mut api, &nodes, &ledger).await;
    // The admin API takes the master key only.
    let mut other = Api::new(gw.addr, Some("not-the-key"));
    assert_eq!(other.get("/_miroir/rebalance").await.status, 403);
    let mut none = Api::new(gw.addr, None);
    assert_eq!(none.get("/_miroir/topology").await.status, 401);
}
