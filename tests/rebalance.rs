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

use crate::support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use support::gateway::GatewayProcess;
use support::meili;
use support::meili_api::Api;
use support::rebalance_fleet::*;

async fn grow_shrink_replace(bin: Option<std::path::PathBuf>) {
    let nodes = start_nodes(bin.as_ref()).await;
    let env = [("MIROIR_MASTER_KEY", KEY)];
    let mut gw = GatewayProcess::start(&entries(&nodes, &[0, 1, 2]), &extra(), &env).await;
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
        let load = Load::start(gw.addr, &ledger, &failures, &reads, Pace::for_nodes(&nodes));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        reload_to(&gw, &nodes, which).await;
        let view = settle(&mut api, &gw, Duration::from_secs(300)).await;
        let took = started.elapsed();
        if let Some(failed) = load.stop().await {
            let log = gw.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "{step}: the load failed: {failed}\ngateway alive: {}\nits last log lines:\n{}",
                gw.alive(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
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

async fn crashes(bin: Option<std::path::PathBuf>) {
    let mut nodes = start_nodes(bin.as_ref()).await;
    let env = [("MIROIR_MASTER_KEY", KEY)];
    let mut gw = GatewayProcess::start(&entries(&nodes, &[0, 1, 2]), &extra(), &env).await;
    let mut api = Api::new(gw.addr, Some(KEY));
    load(&mut api).await;
    let ledger = Arc::new(Mutex::new(Ledger::new()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let reads = Arc::new(AtomicU64::new(0));

    // kill -9 during a copy, with writes recorded for the shard's new owner.
    let load = Load::start(gw.addr, &ledger, &failures, &reads, Pace::for_nodes(&nodes));
    reload_to(&gw, &nodes, &[0, 1, 2, 3]).await;
    until_phase(&mut api, &["copying"], Duration::from_secs(60)).await;
    // Paused before the kill, the move waits after the restart (a pause sent after it would
    // race the move's own resumption, which can finish a small copy first).
    api.json("POST", "/_miroir/rebalance/pause", &json!({}))
        .await;
    assert_eq!(load.stop().await, None, "the load failed");
    gw.restart().await;
    let mut api = Api::new(gw.addr, Some(KEY));

    // kill -9 during a replay: paused, a move stops once it has its copy (or, if it had
    // it before the restart, once it has replayed).
    let load = Load::start(gw.addr, &ledger, &failures, &reads, Pace::for_nodes(&nodes));
    let resp = api
        .json("POST", "/_miroir/rebalance/resume", &json!({}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    api.json("POST", "/_miroir/rebalance/pause", &json!({}))
        .await;
    until_phase(
        &mut api,
        &["replaying", "cleanup"],
        Duration::from_secs(120),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(load.stop().await, None, "the load failed");
    gw.restart().await;
    let mut api = Api::new(gw.addr, Some(KEY));
    let resp = api
        .json("POST", "/_miroir/rebalance/resume", &json!({}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());

    // The source of a copy dies and comes back.
    let load = Load::start(gw.addr, &ledger, &failures, &reads, Pace::for_nodes(&nodes));
    if let Some(copying) = try_until_phase(&mut api, "copying", Duration::from_secs(60)).await {
        let from: usize = copying["from"].as_str().unwrap()[1..]
            .parse::<usize>()
            .unwrap()
            - 1;
        nodes[from].kill_and_restart(Duration::from_secs(2)).await;
    }
    settle(&mut api, &gw, Duration::from_secs(300)).await;
    assert_eq!(load.stop().await, None, "the load failed");
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
    let gw = GatewayProcess::start(&entries(&nodes, &[0, 1, 2]), &extra(), &env).await;
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

/// A write the old owner has acknowledged but not yet applied when its shard's copy starts
/// is in the copy: the copy through the gateway reads the source only once its queue has
/// processed every write sent before the recording began (those are not replayed).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_still_queued_on_the_old_owner_reaches_the_new_one() {
    let nodes = start_nodes(None).await;
    let env = [("MIROIR_MASTER_KEY", KEY)];
    let mut config = extra();
    config.tail.push_str("copy = \"gateway\"\n");
    let gw = GatewayProcess::start(&entries(&nodes, &[0]), &config, &env).await;
    let mut api = Api::new(gw.addr, Some(KEY));
    let docs = |version| -> Vec<u8> {
        let docs: Vec<_> = (0..300).map(|id| movie(id, version)).collect();
        serde_json::to_vec(&docs).unwrap()
    };
    let path = "/indexes/movies/documents?primaryKey=id";
    let task = api
        .write("POST", path, Some("application/json"), &docs(0))
        .await;
    assert_eq!(task["status"], "succeeded", "{task}");
    let TestNode::Fake(n1) = &nodes[0] else {
        unreachable!("test nodes")
    };
    // n1 takes the new version into its queue and answers `enqueued`, as a node busy
    // indexing does.
    n1.pause_queue(true);
    let resp = api
        .call("POST", path, Some("application/json"), &docs(1))
        .await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    let uid = resp.json()["taskUid"].as_u64().unwrap();
    reload_with(&gw, &nodes, &[0, 1], &config).await;
    // Long enough for a copy that does not wait for n1's queue to finish and reach the replay.
    let replaying = try_until_phase(&mut api, "replaying", Duration::from_secs(3)).await;
    n1.pause_queue(false);
    settle(&mut api, &gw, Duration::from_secs(60)).await;
    assert_eq!(api.wait(uid).await["status"], "succeeded");
    let moved = api.get("/_miroir/rebalance").await.json()["moves"].clone();
    assert!(
        moved
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["phase"] == "done"),
        "{moved}"
    );
    let found = browse(&mut api, "movies", "id").await;
    let stale: Vec<&String> = found
        .iter()
        .filter(|(id, doc)| doc["title"] != movie(id.parse().unwrap(), 1)["title"])
        .map(|(id, _)| id)
        .collect();
    assert_eq!(found.len(), 300);
    assert!(
        stale.is_empty(),
        "{} of 300 documents lost the write (a move reached {:?} before n1 applied it): {:?}",
        stale.len(),
        replaying.map(|m| m["shard"].clone()),
        &stale[..stale.len().min(10)]
    );
}
