//! Several gateways, one rebalance: three gateways share their state through Redis; the
//! fleet grows from three nodes to four by a reload of one of them while writers and readers
//! go through all three, and the gateway driving the moves is killed (`kill -9`) in the middle
//! of a copy. Another gateway takes the moves over and finishes them; every write
//! acknowledged through any gateway is found, none twice, each node holds exactly the shards
//! of the placement, no read failed or came back short, and every gateway routes by the same
//! placement. And writes to one document through two gateways at once, while its shard is
//! recorded, leave the new owner with what the old one held (without the shared write order,
//! 7 of 40 documents ended differently).

use crate::support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use support::gateway::{eventually, Extra, GatewayProcess};
use support::meili;
use support::meili_api::Api;
use support::rebalance_fleet::*;
use support::redis::RedisServer;

async fn view(gw: &GatewayProcess, path: &str) -> Value {
    Api::new(gw.addr, Some(KEY)).get(path).await.json()
}

/// The gateway that drives the moves, once one says so.
async fn driver(gws: &[GatewayProcess], skip: Option<usize>) -> usize {
    for _ in 0..300 {
        for (i, gw) in gws.iter().enumerate() {
            if Some(i) != skip && view(gw, "/_miroir/rebalance").await["driving"] == true {
                return i;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no gateway drives the moves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_gateways_grow_the_fleet_through_a_killed_driver_on_test_nodes() {
    grow_through_a_killed_driver("shared_rebalance_test_nodes", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_gateways_grow_the_fleet_through_a_killed_driver_on_real_meilisearch() {
    let name = "three_gateways_grow_the_fleet_through_a_killed_driver_on_real_meilisearch";
    let Some(bin) = meili::binary() else {
        meili::skip_notice(name);
        return;
    };
    grow_through_a_killed_driver("shared_rebalance_real", Some(bin)).await;
}

async fn grow_through_a_killed_driver(name: &str, bin: Option<std::path::PathBuf>) {
    let Some(redis) = RedisServer::start(name) else {
        return;
    };
    let nodes = start_nodes(bin.as_ref()).await;
    let extra = Extra {
        tail: format!("{}{}", extra().tail, redis.state_config("grow")),
        ..Extra::default()
    };
    let env = [("MIROIR_MASTER_KEY", KEY)];
    let mut gws = Vec::new();
    for _ in 0..3 {
        gws.push(GatewayProcess::start(&entries(&nodes, &[0, 1, 2]), &extra, &env).await);
    }
    load(&mut Api::new(gws[0].addr, Some(KEY))).await;
    let ledger = Arc::new(Mutex::new(Ledger::new()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let reads = Arc::new(AtomicU64::new(0));
    let mut loads: Vec<Option<Load>> = gws
        .iter()
        .enumerate()
        .map(|(i, gw)| {
            Some(Load::on_lane(
                gw.addr,
                &ledger,
                &failures,
                &reads,
                (i as u64, 3),
                Pace::for_nodes(&nodes),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The reload of one gateway grows the cluster; the others follow its plan.
    gws[1].write_config(&entries(&nodes, &[0, 1, 2, 3]), &extra);
    gws[1].sighup();
    let first = driver(&gws, None).await;
    let mut api = Api::new(gws[first].addr, Some(KEY));
    until_phase(&mut api, &["copying"], Duration::from_secs(60)).await;
    for gw in &gws {
        let moves = view(gw, "/_miroir/rebalance").await["moves"].clone();
        assert!(
            moves.as_array().is_some_and(|m| !m.is_empty()),
            "a gateway does not see the moves: {moves}"
        );
    }

    // kill -9 of the driver mid-copy: another takes the lease over and finishes.
    let failed = loads[first].take().unwrap().stop().await;
    assert_eq!(failed, None, "the load through the driver failed");
    gws[first].kill();
    let next = driver(&gws, Some(first)).await;
    assert_ne!(next, first);
    let mut api = Api::new(gws[next].addr, Some(KEY));
    let done = settle(&mut api, &gws[next], Duration::from_secs(300)).await;
    for load in loads.iter_mut().filter_map(Option::take) {
        if let Some(failed) = load.stop().await {
            panic!("the load failed: {failed}\n{}", gws[next].log());
        }
    }
    gws[first].restart().await;

    verify("grown by three gateways", &mut api, &nodes, &ledger).await;
    let moves = done["moves"].as_array().unwrap();
    assert!(
        moves.iter().all(|m| m["phase"] == "done"),
        "every move done: {done}"
    );
    // The second driver changed owners itself, while the other gateways held their writes.
    let log = gws[next].log();
    assert!(log.contains("this gateway drives the moves"), "{log}");
    assert!(log.contains(" now on n4 (writes held"), "{log}");
    let held = gws
        .iter()
        .enumerate()
        .filter(|(i, gw)| *i != next && gw.log().contains("held here too"))
        .count();
    assert!(held > 0, "no other gateway held its writes for a barrier");
    let placement = view(&gws[next], "/_miroir/topology").await;
    let settled = eventually(Duration::from_secs(10), async || {
        let mut same = true;
        for gw in &gws {
            let t = view(gw, "/_miroir/topology").await;
            same &= t["placement"] == placement["placement"] && t["epoch"] == placement["epoch"];
        }
        same
    })
    .await;
    assert!(settled, "the gateways route by different placements");
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
    let barrier = moves
        .iter()
        .filter_map(|m| m["barrierMs"].as_u64())
        .max()
        .unwrap_or(0);
    eprintln!(
        "{} moves by two drivers, longest write barrier {barrier} ms, {} reads",
        moves.len(),
        reads.load(Ordering::Relaxed)
    );
}

/// Writes to one document through two gateways at once, while its shard is recorded for its
/// next owner: the new owner ends with what the old one held, whichever order the two
/// gateways' writes reached it in (the record follows the old owner's order).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_through_two_gateways_keep_the_old_owner_s_order() {
    let Some(redis) = RedisServer::start("shared_rebalance_order") else {
        return;
    };
    let nodes = start_nodes(None).await;
    let extra = Extra {
        tail: format!("{}{}", extra().tail, redis.state_config("order")),
        ..Extra::default()
    };
    let env = [("MIROIR_MASTER_KEY", KEY)];
    let ga = GatewayProcess::start(&entries(&nodes, &[0, 1, 2]), &extra, &env).await;
    let gb = GatewayProcess::start(&entries(&nodes, &[0, 1, 2]), &extra, &env).await;
    let mut a = Api::new(ga.addr, Some(KEY));
    load(&mut a).await;

    // A move stopped after its copy: its shard's writes are recorded, not yet replayed.
    ga.write_config(&entries(&nodes, &[0, 1, 2, 3]), &extra);
    ga.sighup();
    let copying = until_phase(&mut a, &["copying"], Duration::from_secs(60)).await;
    let resp = a
        .json("POST", "/_miroir/rebalance/pause", &serde_json::json!({}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let id = copying["id"].clone();
    let moving = loop {
        let view = view(&ga, "/_miroir/rebalance").await;
        let m = view["moves"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap()
            .clone();
        if m["phase"] == "replaying" {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let shard = moving["shard"].as_u64().unwrap() as u32;
    let from = moving["from"].as_str().unwrap()[1..]
        .parse::<usize>()
        .unwrap()
        - 1;
    let ids: Vec<u64> = (HOT..MOVIES)
        .filter(|id| miroir::routing::shard_of(id.to_string().as_bytes(), 16) == shard)
        .take(40)
        .collect();
    assert!(ids.len() >= 20, "movies of shard {shard}: {ids:?}");

    // Each document written through both gateways at the same moment.
    let mut tasks = Vec::new();
    for &id in &ids {
        let write = |addr, who: &'static str| async move {
            let mut api = Api::new(addr, Some(KEY));
            let body = serde_json::json!([{"id": id, "title": format!("{who} {id}")}]);
            let resp = api.json("PUT", "/indexes/movies/documents", &body).await;
            assert_eq!(resp.status, 202, "{}", resp.text());
            resp.json()["taskUid"].as_u64().unwrap()
        };
        let (ta, tb) = tokio::join!(write(ga.addr, "a"), write(gb.addr, "b"));
        tasks.extend([ta, tb]);
    }
    for uid in tasks {
        assert_eq!(a.wait(uid).await["status"], "succeeded");
    }
    let mut old_owner = Api::new(nodes[from].addr(), Some(KEY));
    let mut held = Vec::new();
    for &id in &ids {
        let doc = old_owner
            .get(&format!("/indexes/movies/documents/{id}"))
            .await
            .json();
        held.push(doc["title"].clone());
    }

    let resp = a
        .json("POST", "/_miroir/rebalance/resume", &serde_json::json!({}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    settle(&mut a, &ga, Duration::from_secs(300)).await;
    let mut differ = Vec::new();
    for (&id, want) in ids.iter().zip(&held) {
        let doc = a
            .get(&format!("/indexes/movies/documents/{id}"))
            .await
            .json();
        if doc["title"] != *want {
            differ.push(format!("{id}: old owner {want}, now {}", doc["title"]));
        }
    }
    assert!(differ.is_empty(), "{differ:?}");
    let placed = view(&ga, "/_miroir/topology").await["placement"][shard as usize].clone();
    assert!(
        placed.to_string().contains("n4"),
        "shard {shard} moved: {placed}"
    );
}
