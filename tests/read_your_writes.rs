//! A settings change, waited for as an SDK waits, is seen by the very next search, through
//! Miroir as on one node, even while other searches keep the gateway's view of the index's
//! settings warm. Real Meilisearch only (the test nodes have no `distinctAttribute`).

use crate::support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::meili::{self, ReferenceAndFleet};
use support::meili_api::Api;

const KEY: &str = "read-your-writes-master-key-01";
const COLORS: u64 = 5;
const DOCS: u64 = 120;

/// Sets `distinct` and waits for the task, polling every 10 ms; how long that took.
async fn set_distinct(api: &mut Api, distinct: Value) -> Duration {
    let started = Instant::now();
    let body = json!({"distinctAttribute": distinct});
    let resp = api.json("PATCH", "/indexes/docs/settings", &body).await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    let uid = resp.json()["taskUid"].as_u64().unwrap();
    loop {
        let task = api.get(&format!("/tasks/{uid}")).await.json();
        match task["status"].as_str() {
            Some("succeeded") => return started.elapsed(),
            Some("failed" | "canceled") => panic!("{task}"),
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn hits(api: &mut Api) -> usize {
    let resp = api
        .json("POST", "/indexes/docs/search", &json!({"limit": 500}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()["hits"].as_array().unwrap().len()
}

/// Rounds of distinct on / off, each checked by the next search; the failures and the
/// median time from a write to its task's success.
async fn rounds(api: &mut Api, n: usize) -> (Vec<String>, Duration) {
    let mut failures = Vec::new();
    let mut times = Vec::new();
    for round in 0..n {
        times.push(set_distinct(api, json!("color")).await);
        let got = hits(api).await;
        if got as u64 != COLORS {
            failures.push(format!("round {round}: distinct on, {got} hits"));
        }
        times.push(set_distinct(api, Value::Null).await);
        let got = hits(api).await;
        if got as u64 != DOCS {
            failures.push(format!("round {round}: distinct off, {got} hits"));
        }
    }
    times.sort();
    (failures, times[times.len() / 2])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_change_is_seen_by_the_next_search() {
    let Some(bin) = meili::binary() else {
        meili::skip_notice("a_settings_change_is_seen_by_the_next_search");
        return;
    };
    let fleet = ReferenceAndFleet::start(&bin, KEY).await;
    let mut single = Api::new(fleet.single.addr, Some(KEY));
    let mut miroir = Api::new(fleet.gateway.addr, Some(KEY));
    let docs: Vec<Value> = (0..DOCS)
        .map(|i| json!({"id": i, "color": format!("c{}", i % COLORS)}))
        .collect();
    for api in [&mut single, &mut miroir] {
        let resp = api
            .json("POST", "/indexes/docs/documents", &json!(docs))
            .await;
        let uid = resp.json()["taskUid"].as_u64().unwrap();
        api.wait(uid).await;
        let body = json!({"filterableAttributes": ["color"]});
        let resp = api.json("PATCH", "/indexes/docs/settings", &body).await;
        api.wait(resp.json()["taskUid"].as_u64().unwrap()).await;
    }
    // Other clients search all the time, through the gateway.
    let stop = Arc::new(AtomicBool::new(false));
    let background = {
        let (stop, addr) = (stop.clone(), fleet.gateway.addr);
        tokio::spawn(async move {
            let mut api = Api::new(addr, Some(KEY));
            while !stop.load(Ordering::Relaxed) {
                hits(&mut api).await;
            }
        })
    };
    let (node_failures, node_median) = rounds(&mut single, 10).await;
    let (failures, median) = rounds(&mut miroir, 10).await;
    stop.store(true, Ordering::Relaxed);
    background.await.unwrap();
    eprintln!("write to success, median: one node {node_median:?}, Miroir over 3 nodes {median:?}");
    assert!(
        node_failures.is_empty(),
        "the node itself: {node_failures:?}"
    );
    assert!(failures.is_empty(), "{failures:?}");
}
