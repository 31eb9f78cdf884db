//! Reads survive a failing replica: a killed node, a node answering `503
//! too_many_search_requests` (test nodes; with real Meilisearch too when available).

use crate::support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use support::fake_node::FakeNode;
use support::gateway::{Extra, GatewayProcess, NodeEntry};
use support::meili_api::Api;

/// Latency percentile of a set of durations.
fn percentile(durations: &mut [Duration], p: f64) -> Duration {
    if durations.is_empty() {
        return Duration::ZERO;
    }
    durations.sort();
    durations[((durations.len() as f64 - 1.0) * p).round() as usize]
}

/// Searches in a loop until `stop`, recording (when, latency, failure).
async fn search_loop(
    addr: std::net::SocketAddr,
    index: &str,
    expected: u64,
    stop: Arc<AtomicBool>,
) -> Vec<(Instant, Duration, Option<String>)> {
    let mut api = Api::new(addr, None);
    let mut out = Vec::new();
    let body = json!({"q": "", "limit": 1000});
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let resp = api
            .json("POST", &format!("/indexes/{index}/search"), &body)
            .await;
        let failure = if resp.status != 200 {
            Some(format!("{} {}", resp.status, resp.text()))
        } else {
            let v = resp.json();
            let got = v["estimatedTotalHits"].as_u64().unwrap_or(0);
            let hits = v["hits"].as_array().map_or(0, Vec::len) as u64;
            (got != expected || hits != expected)
                .then(|| format!("{got} total, {hits} hits, expected {expected}"))
        };
        out.push((started, started.elapsed(), failure));
    }
    out
}

async fn two_groups() -> (Vec<FakeNode>, GatewayProcess, Api) {
    fleet(&["a1", "a2", "b1", "b2"], &Extra::default()).await
}

/// Test nodes named `<group><n>` behind a gateway, holding 200 documents in index `f`.
async fn fleet(names: &[&str], extra: &Extra) -> (Vec<FakeNode>, GatewayProcess, Api) {
    let mut nodes = Vec::new();
    for name in names {
        nodes.push(FakeNode::start(name, None).await);
    }
    let entries: Vec<NodeEntry> = nodes
        .iter()
        .map(|n| NodeEntry::new(&n.name, &n.url(), &n.name[..1]))
        .collect();
    let gw = GatewayProcess::start(&entries, extra, &[]).await;
    let mut api = Api::new(gw.addr, None);
    let docs: Vec<serde_json::Value> = (0..200)
        .map(|i| json!({"id": i, "title": format!("doc {i}")}))
        .collect();
    let t = api
        .write(
            "POST",
            "/indexes/f/documents",
            Some("application/json"),
            serde_json::Value::from(docs).to_string().as_bytes(),
        )
        .await;
    assert_eq!(t["status"], "succeeded", "{t}");
    // Each document is on one node of each group.
    let groups: std::collections::BTreeSet<&str> = names.iter().map(|n| &n[..1]).collect();
    let stored: usize = nodes.iter().map(|n| n.documents("f").len()).sum();
    assert_eq!(stored, 200 * groups.len());
    (nodes, gw, api)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_replica_fails_no_search() {
    let (nodes, gw, _api) = two_groups().await;
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..3)
        .map(|_| tokio::spawn(search_loop(gw.addr, "f", 200, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let killed_at = Instant::now();
    nodes[0].stop();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    stop.store(true, Ordering::Relaxed);
    let mut results = Vec::new();
    for c in clients {
        results.extend(c.await.unwrap());
    }
    let failures: Vec<&String> = results.iter().filter_map(|r| r.2.as_ref()).collect();
    let mut before: Vec<Duration> = results
        .iter()
        .filter(|r| r.0 < killed_at)
        .map(|r| r.1)
        .collect();
    let mut during: Vec<Duration> = results
        .iter()
        .filter(|r| r.0 >= killed_at)
        .map(|r| r.1)
        .collect();
    eprintln!(
        "kill test (test nodes): {} searches, {} failed; p50/p99 before {:?}/{:?}, after the kill {:?}/{:?}",
        results.len(),
        failures.len(),
        percentile(&mut before, 0.5),
        percentile(&mut before, 0.99),
        percentile(&mut during, 0.5),
        percentile(&mut during, 0.99)
    );
    assert!(
        failures.is_empty(),
        "{:?}",
        &failures[..failures.len().min(5)]
    );
    assert!(during.len() > 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_replica_is_skipped() {
    let (nodes, gw, mut api) = two_groups().await;
    nodes[0].set_search_overloaded(true);
    nodes[1].set_search_overloaded(true);
    for _ in 0..5 {
        let resp = api
            .json(
                "POST",
                "/indexes/f/search",
                &json!({"q": "", "limit": 1000}),
            )
            .await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.json()["estimatedTotalHits"], 200);
        assert_eq!(resp.json()["hits"].as_array().unwrap().len(), 200);
    }
    // Every replica of some shards overloaded: a Meilisearch-style 503 naming them.
    nodes[2].set_search_overloaded(true);
    nodes[3].set_search_overloaded(true);
    let resp = api
        .json("POST", "/indexes/f/search", &json!({"q": ""}))
        .await;
    assert_eq!(resp.status, 503);
    assert_eq!(resp.json()["code"], "miroir_shards_unavailable");
    assert!(resp.json()["message"]
        .as_str()
        .unwrap()
        .contains("No replica of shards"));
    drop(gw);
}

async fn search_all(api: &mut Api) -> support::http::Message {
    api.json(
        "POST",
        "/indexes/f/search",
        &json!({"q": "", "limit": 1000}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_replica_is_hedged() {
    let (nodes, gw, mut api) = two_groups().await;
    // Group b answers 50 ms late, so that group a is asked first once the gateway has seen
    // it (its latencies so far are the setup write's, in any order).
    for b in &nodes[2..] {
        b.state.lock().unwrap().delay = Duration::from_millis(50);
    }
    for _ in 0..10 {
        assert_eq!(search_all(&mut api).await.status, 200);
    }
    // a1 answers searches after 3 s; its health checks stay fast, so only hedging helps.
    nodes[0].state.lock().unwrap().search_delay = Duration::from_secs(3);
    for i in 0..20 {
        let started = Instant::now();
        let resp = search_all(&mut api).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.json()["hits"].as_array().unwrap().len(), 200);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "search {i} waited for the slow replica: {:?}",
            started.elapsed()
        );
    }
    let hedges = gw.metric("miroir_hedges_total").await.unwrap();
    let wins = gw.metric("miroir_hedge_wins_total").await.unwrap();
    eprintln!("slow replica: 20 searches, {hedges} hedges, {wins} won");
    assert!(wins >= 1.0, "{hedges} hedges, {wins} won");
    // Cancelled slow answers count against a1: it stops being asked first.
    assert!(hedges < 20.0, "a1 kept being chosen: {hedges} hedges");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_gives_up_at_its_deadline() {
    let extra = Extra {
        tail: "[timeouts]\nrequest_ms = 400\n".into(),
        ..Extra::default()
    };
    let (nodes, _gw, mut api) = fleet(&["a1", "a2"], &extra).await;
    nodes[0].state.lock().unwrap().search_delay = Duration::from_secs(5);
    let started = Instant::now();
    let resp = search_all(&mut api).await;
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert_eq!(resp.json()["code"], "miroir_shards_unavailable");
    let message = resp.json()["message"].as_str().unwrap().to_string();
    assert!(message.contains("request deadline of 400 ms"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(resp
        .headers
        .iter()
        .any(|(n, v)| n == "retry-after" && v == "10"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_to_a_node_are_bounded() {
    let extra = Extra {
        tail: "[limits]\nnode_concurrency = 2\n[hedging]\nenabled = false\n".into(),
        ..Extra::default()
    };
    let (nodes, gw, _api) = fleet(&["a1"], &extra).await;
    nodes[0].state.lock().unwrap().search_delay = Duration::from_millis(100);
    nodes[0].state.lock().unwrap().max_in_flight = 0;
    let searches: Vec<_> = (0..8)
        .map(|_| {
            let addr = gw.addr;
            tokio::spawn(async move { search_all(&mut Api::new(addr, None)).await })
        })
        .collect();
    for s in searches {
        let resp = s.await.unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.json()["hits"].as_array().unwrap().len(), 200);
    }
    // Health checks come from their own connections, outside the bound: at most one more.
    let max = nodes[0].state.lock().unwrap().max_in_flight;
    assert!((2..=3).contains(&max), "{max} requests at once");
}

mod real {
    //! The same failures with real Meilisearch nodes, when a binary is available.

    use super::*;
    use support::meili::{self, MeiliNode};

    const KEY: &str = "miroir-failover-key-0123456789";

    async fn cluster(bin: &std::path::PathBuf, hedging: bool) -> (Vec<MeiliNode>, GatewayProcess) {
        let mut nodes = Vec::new();
        for _ in 0..4 {
            nodes.push(MeiliNode::start(bin, KEY).await);
        }
        let groups = ["a", "a", "b", "b"];
        let entries: Vec<NodeEntry> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| NodeEntry::new(&format!("m{i}"), &n.url(), groups[i]))
            .collect();
        // A hung node is given up on after one second.
        let extra = Extra {
            tail: format!("[timeouts]\nread_ms = 1000\n[hedging]\nenabled = {hedging}\n"),
            ..Extra::default()
        };
        let gw = GatewayProcess::start(&entries, &extra, &[("MIROIR_MASTER_KEY", KEY)]).await;
        let mut api = Api::new(gw.addr, Some(KEY));
        let docs: Vec<serde_json::Value> = (0..2000)
            .map(|i| json!({"id": i, "title": format!("document number {i}")}))
            .collect();
        let t = api
            .write(
                "POST",
                "/indexes/f/documents",
                Some("application/json"),
                serde_json::Value::from(docs).to_string().as_bytes(),
            )
            .await;
        assert_eq!(t["status"], "succeeded", "{t}");
        (nodes, gw)
    }

    async fn searches(
        addr: std::net::SocketAddr,
        stop: Arc<AtomicBool>,
    ) -> Vec<(Instant, Duration, Option<String>)> {
        let mut api = Api::new(addr, Some(KEY));
        let mut out = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let resp = api
                .json(
                    "POST",
                    "/indexes/f/search",
                    &json!({"q": "document", "limit": 20}),
                )
                .await;
            let failure = match resp.status {
                200 if resp.json()["estimatedTotalHits"] == 2000 => None,
                200 => Some(format!("total {}", resp.json()["estimatedTotalHits"])),
                s => Some(format!("{s} {}", resp.text())),
            };
            out.push((started, started.elapsed(), failure));
        }
        out
    }

    fn report(what: &str, results: &[(Instant, Duration, Option<String>)], at: Instant) -> usize {
        let failures: Vec<&String> = results.iter().filter_map(|r| r.2.as_ref()).collect();
        let mut before: Vec<Duration> = results.iter().filter(|r| r.0 < at).map(|r| r.1).collect();
        let mut during: Vec<Duration> = results.iter().filter(|r| r.0 >= at).map(|r| r.1).collect();
        eprintln!(
            "{what} (real Meilisearch): {} searches, {} failed; p50/p99 before {:?}/{:?}, during {:?}/{:?}, max during {:?}",
            results.len(),
            failures.len(),
            percentile(&mut before, 0.5),
            percentile(&mut before, 0.99),
            percentile(&mut during, 0.5),
            percentile(&mut during, 0.99),
            percentile(&mut during, 1.0)
        );
        if let Some(f) = failures.first() {
            eprintln!("first failure: {f}");
        }
        failures.len()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn kill_and_stop_a_real_replica() {
        let Some(bin) = meili::binary() else {
            meili::skip_notice("kill_and_stop_a_real_replica");
            return;
        };
        // kill -9
        let (mut nodes, gw) = cluster(&bin, true).await;
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..3)
            .map(|_| tokio::spawn(searches(gw.addr, stop.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let at = Instant::now();
        nodes[0].kill();
        tokio::time::sleep(Duration::from_millis(3000)).await;
        stop.store(true, Ordering::Relaxed);
        let mut results = Vec::new();
        for c in clients {
            results.extend(c.await.unwrap());
        }
        assert_eq!(report("kill -9", &results, at), 0);
        drop(gw);
        drop(nodes);

        // SIGSTOP for three seconds: a hung node, with hedging and without.
        for hedging in [true, false] {
            let (nodes, gw) = cluster(&bin, hedging).await;
            let stop = Arc::new(AtomicBool::new(false));
            let clients: Vec<_> = (0..3)
                .map(|_| tokio::spawn(searches(gw.addr, stop.clone())))
                .collect();
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let at = Instant::now();
            nodes[0].signal(libc::SIGSTOP);
            tokio::time::sleep(Duration::from_millis(3000)).await;
            nodes[0].signal(libc::SIGCONT);
            tokio::time::sleep(Duration::from_millis(1000)).await;
            stop.store(true, Ordering::Relaxed);
            let mut results = Vec::new();
            for c in clients {
                results.extend(c.await.unwrap());
            }
            let what = format!(
                "SIGSTOP 3 s, hedging {} ({} hedges)",
                if hedging { "on" } else { "off" },
                gw.metric("miroir_hedges_total").await.unwrap_or(0.0)
            );
            assert_eq!(report(&what, &results, at), 0);
        }
    }
}
