//! The rebalancing tests' fleet and workload: five nodes of either kind, two indexes, a
//! writer keeping a ledger of what it was acknowledged, readers that must never fail or come
//! back short, and the checks after each step (content through Miroir, shards on the nodes).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::fake_node::FakeNode;
use super::gateway::{Extra, GatewayProcess, NodeEntry};
use super::meili::{self, MeiliNode};
use super::meili_api::Api;

pub const KEY: &str = "rebalance-master-key-0123456789";
pub const MOVIES: u64 = 6_000;
pub const BOOKS: u64 = 4_000;
/// Movies below this id are the writer's; the others never change (the readers count them).
pub const HOT: u64 = 1_000;

/// A node of either kind.
pub enum TestNode {
    Fake(FakeNode),
    Real(MeiliNode),
}

impl TestNode {
    pub fn url(&self) -> String {
        match self {
            TestNode::Fake(n) => n.url(),
            TestNode::Real(n) => n.url(),
        }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        match self {
            TestNode::Fake(n) => n.addr,
            TestNode::Real(n) => n.addr,
        }
    }

    pub async fn kill_and_restart(&mut self, down_for: Duration) {
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
pub async fn start_nodes(bin: Option<&std::path::PathBuf>) -> Vec<TestNode> {
    let turn = match bin {
        Some(_) => Some(meili::large_fleet_turn().await),
        None => None,
    };
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
    // Kept by the last node, which is dropped last.
    if let (Some(turn), Some(TestNode::Real(last))) = (turn, nodes.last_mut()) {
        last.keep(turn);
    }
    nodes
}

pub fn entries(nodes: &[TestNode], which: &[usize]) -> Vec<NodeEntry> {
    which
        .iter()
        .map(|&i| NodeEntry::new(&format!("n{}", i + 1), &nodes[i].url(), "a"))
        .collect()
}

pub fn movie(id: u64, version: u64) -> Value {
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
pub async fn load(api: &mut Api) {
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
pub struct Ledger {
    pub movies: BTreeMap<u64, Option<Value>>,
    pub tasks: Vec<u64>,
    pub refused: Vec<String>,
    /// Per movie id, the acknowledged writes that touched it, for a failure's message.
    pub history: BTreeMap<u64, Vec<String>>,
}

impl Ledger {
    /// The writer's movies as loaded.
    pub fn new() -> Ledger {
        Ledger {
            movies: (0..HOT).map(|id| (id, Some(movie(id, 0)))).collect(),
            ..Ledger::default()
        }
    }
}

/// What an acknowledged write does to the ledger.
pub type Effect = Box<dyn Fn(&mut Ledger) + Send>;

/// Upserts, partial updates and deletes on the hot movies, in a loop, waiting for some.
/// Writers on lanes `0..lanes` write different movies (those whose id is their lane modulo
/// `lanes`), so one ledger knows each movie's last version.
pub async fn writer(
    addr: std::net::SocketAddr,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    (lane, lanes): (u64, u64),
    pace: Pace,
) {
    let in_lane = move |id: u64| match id - id % lanes + lane {
        past if past >= HOT => past - lanes,
        id => id,
    };
    let mut api = Api::new(addr, Some(KEY));
    // A write may wait out a whole barrier (see `extra`) before it is answered.
    api.client.timeout = Duration::from_millis(BARRIER_MS * 2);
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let base = (round * 37) % HOT;
        let (method, path, body, ids, effect): (&str, String, Value, Vec<u64>, Effect) =
            match round % 4 {
                0 | 1 => {
                    let ids: Vec<u64> = (0..10).map(|k| in_lane((base + k * 7) % HOT)).collect();
                    let docs: Vec<Value> = ids.iter().map(|&id| movie(id, round)).collect();
                    let docs2 = docs.clone();
                    (
                        "POST",
                        "/indexes/movies/documents".into(),
                        Value::Array(docs),
                        ids,
                        Box::new(move |l: &mut Ledger| {
                            for d in &docs2 {
                                l.movies.insert(d["id"].as_u64().unwrap(), Some(d.clone()));
                            }
                        }),
                    )
                }
                2 => {
                    let ids: Vec<u64> = (0..5).map(|k| in_lane((base + k * 11) % HOT)).collect();
                    let docs: Vec<Value> = ids
                        .iter()
                        .map(|&id| json!({"id": id, "rating": round}))
                        .collect();
                    (
                        "PUT",
                        "/indexes/movies/documents".into(),
                        Value::Array(docs),
                        ids.clone(),
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
                    let ids: Vec<u64> = (0..3).map(|k| in_lane((base + k * 13) % HOT)).collect();
                    (
                        "POST",
                        "/indexes/movies/documents/delete-batch".into(),
                        json!(ids),
                        ids.clone(),
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
            let refused = format!("{method} {path}: {} {}", resp.status, resp.text());
            {
                let mut l = ledger.lock().unwrap();
                for &id in &ids {
                    let what = format!("refused (round {round}): {refused}");
                    l.history.entry(id).or_default().push(what);
                }
                l.refused.push(refused);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let uid = resp.json()["taskUid"].as_u64().unwrap();
        {
            let mut l = ledger.lock().unwrap();
            effect(&mut l);
            l.tasks.push(uid);
            for id in ids {
                let what = format!("task {uid}: {method} {path} (round {round})");
                l.history.entry(id).or_default().push(what);
            }
        }
        if round % 5 == 0 {
            let task = api.wait(uid).await;
            assert_eq!(task["status"], "succeeded", "{task}");
        }
        tokio::time::sleep(pace.write).await;
    }
}

/// Searches and fetches that must never fail or come back short while shards move.
pub async fn reader(
    addr: std::net::SocketAddr,
    failures: Arc<Mutex<Vec<String>>>,
    reads: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    pace: Pace,
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
        tokio::time::sleep(pace.read).await;
    }
}

/// The pauses of the load's writers and readers between requests.
#[derive(Clone, Copy)]
pub struct Pace {
    pub write: Duration,
    pub read: Duration,
}

impl Pace {
    /// Real nodes index and search on the same two cores as everything else: at the test
    /// nodes' pace their task queues stayed long, and each move's barrier (which waits for
    /// the queues) held writes for 10 s or more.
    pub fn for_nodes(nodes: &[TestNode]) -> Pace {
        match nodes.first() {
            Some(TestNode::Real(_)) => Pace {
                write: Duration::from_millis(100),
                read: Duration::from_millis(20),
            },
            _ => Pace {
                write: Duration::from_millis(20),
                read: Duration::ZERO,
            },
        }
    }
}

/// A failure that answered 200 came back short (or wrong).
pub fn short(status: u16) -> &'static str {
    if status == 200 {
        "short "
    } else {
        ""
    }
}

/// Waits until the rebalance has no active move; the admin view.
pub async fn settle(api: &mut Api, gw: &GatewayProcess, within: Duration) -> Value {
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
pub async fn browse(api: &mut Api, index: &str, key: &str) -> BTreeMap<String, Value> {
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
pub async fn verify(step: &str, api: &mut Api, nodes: &[TestNode], ledger: &Mutex<Ledger>) {
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
    let differences: Vec<String> = differ
        .iter()
        .take(5)
        .map(|k| {
            let history = k
                .parse::<u64>()
                .ok()
                .and_then(|id| ledger.lock().unwrap().history.get(&id).cloned())
                .unwrap_or_default();
            format!(
                "{k}: acknowledged {} found {}; its writes:\n  {}",
                expected[*k],
                movies[*k],
                history.join("\n  ")
            )
        })
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differ.is_empty(),
        "{step}: {} missing {:?}, {} extra {:?}, {} differ:\n{}",
        missing.len(),
        &missing[..missing.len().min(5)],
        extra.len(),
        &extra[..extra.len().min(5)],
        differ.len(),
        differences.join("\n")
    );
    let books = browse(api, "books", "isbn").await;
    assert_eq!(books.len() as u64, BOOKS, "{step}: books");
}

/// Each node holds exactly the shards the placement gives it, and the nodes together hold
/// every document once.
pub async fn check_nodes(step: &str, api: &mut Api, nodes: &[TestNode], movies: u64) {
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

pub struct Load {
    stop: Arc<AtomicBool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(
        addr: std::net::SocketAddr,
        ledger: &Arc<Mutex<Ledger>>,
        failures: &Arc<Mutex<Vec<String>>>,
        reads: &Arc<AtomicU64>,
        pace: Pace,
    ) -> Load {
        Load::on_lane(addr, ledger, failures, reads, (0, 1), pace)
    }

    /// A load whose writer writes the movies of `lane` (see [`writer`]).
    pub fn on_lane(
        addr: std::net::SocketAddr,
        ledger: &Arc<Mutex<Ledger>>,
        failures: &Arc<Mutex<Vec<String>>>,
        reads: &Arc<AtomicU64>,
        lane: (u64, u64),
        pace: Pace,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = vec![tokio::spawn(writer(
            addr,
            ledger.clone(),
            stop.clone(),
            lane,
            pace,
        ))];
        for _ in 0..2 {
            handles.push(tokio::spawn(reader(
                addr,
                failures.clone(),
                reads.clone(),
                stop.clone(),
                pace,
            )));
        }
        Load { stop, handles }
    }

    /// Stops the load; why a load task failed, if one did.
    pub async fn stop(self) -> Option<String> {
        self.stop.store(true, Ordering::Relaxed);
        let mut failed = None;
        for h in self.handles {
            if let Err(e) = h.await {
                failed = Some(match e.try_into_panic() {
                    Ok(p) => p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default(),
                    Err(e) => e.to_string(),
                });
            }
        }
        failed
    }
}

const BARRIER_MS: u64 = 15_000;

/// The gateway configuration of these tests. The write barrier gets 15 s rather than the
/// default 5: six nodes, the gateway and the workload share two cores, where a node's last
/// tasks can take longer than 5 s, and a move would retry until the test's deadline.
pub fn extra() -> Extra {
    Extra {
        tail: format!("[rebalance]\nbarrier_timeout_ms = {BARRIER_MS}\n"),
        ..Extra::default()
    }
}

pub async fn reload_to(gw: &GatewayProcess, nodes: &[TestNode], which: &[usize]) {
    reload_with(gw, nodes, which, &extra()).await;
}

pub async fn reload_with(gw: &GatewayProcess, nodes: &[TestNode], which: &[usize], config: &Extra) {
    gw.write_config(&entries(nodes, which), config);
    gw.sighup();
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Waits until some move is in one of `phases`.
pub async fn until_phase(api: &mut Api, phases: &[&str], within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let view = api.get("/_miroir/rebalance").await.json();
        if let Some(m) = view["moves"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| phases.iter().any(|p| m["phase"] == *p))
        {
            return m.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no move reached {phases:?}: {view}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until some move is in `phase`, if one gets there.
pub async fn try_until_phase(api: &mut Api, phase: &str, within: Duration) -> Option<Value> {
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
