//! Several gateways, one cluster: two gateways share their state through Redis (test nodes
//! behind them). A write accepted through one is awaited, listed, filtered and deleted
//! through the other with the same answers, and a webhook is called once; a gateway whose
//! configuration desires other nodes is noticed; a rebalance planned through one is
//! followed and steered through the other; with Redis down, searches keep working and a
//! write answers a prompt `503` with `Retry-After`, nothing changed; when Redis returns,
//! writes go through again.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::fake_node::FakeNode;
use support::gateway::{eventually, Extra, GatewayProcess, NodeEntry};
use support::meili_api::Api;
use support::redis::RedisServer;
use support::webhook_receiver::{gunzip, receiver};

const KEY: &str = "shared-state-master-key-012345";

fn entries(nodes: &[FakeNode]) -> Vec<NodeEntry> {
    nodes
        .iter()
        .enumerate()
        .map(|(i, n)| NodeEntry::new(&format!("n{i}"), &n.url(), "a"))
        .collect()
}

fn shared(redis: &RedisServer) -> Extra {
    Extra {
        tail: redis.state_config("cluster1"),
        ..Extra::default()
    }
}

async fn gateway(nodes: &[FakeNode], redis: &RedisServer) -> GatewayProcess {
    GatewayProcess::start(
        &entries(nodes),
        &shared(redis),
        &[("MIROIR_MASTER_KEY", KEY)],
    )
    .await
}

async fn add(api: &mut Api, index: &str, id: u64) -> u64 {
    let path = format!("/indexes/{index}/documents");
    let resp = api
        .json("POST", &path, &json!([{"id": id, "title": "shared"}]))
        .await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    resp.json()["taskUid"].as_u64().unwrap()
}

/// A listing without the fields that depend on when it is read.
fn listing(page: &Value) -> Value {
    let mut page = page.clone();
    for t in page["results"].as_array_mut().into_iter().flatten() {
        t.as_object_mut().unwrap().remove("duration");
    }
    page
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_tasks_through_redis() {
    let Some(mut redis) = RedisServer::start("two_gateways_share_tasks_through_redis") else {
        return;
    };
    let mut nodes = Vec::new();
    for name in ["n1", "n2"] {
        nodes.push(FakeNode::start(name, Some(KEY)).await);
    }
    let ga = gateway(&nodes, &redis).await;
    let gb = gateway(&nodes, &redis).await;
    let mut a = Api::new(ga.addr, Some(KEY));
    let mut b = Api::new(gb.addr, Some(KEY));

    // Uids come from one space, whichever gateway takes the write.
    let first = add(&mut a, "movies", 1).await;
    let second = add(&mut b, "movies", 2).await;
    let third = add(&mut a, "books", 3).await;
    assert!(first < second && second < third, "{first} {second} {third}");

    // Awaited through the other gateway, with the same answer.
    let seen_b = b.wait(first).await;
    let seen_a = a.wait(first).await;
    assert_eq!(seen_b["status"], "succeeded", "{seen_b}");
    assert_eq!(seen_a, seen_b);
    b.wait(third).await;
    a.wait(second).await;
    for query in [
        "/tasks",
        "/tasks?indexUids=movies",
        "/tasks?statuses=succeeded&limit=2",
        "/batches",
    ] {
        let from_a = a.get(query).await;
        let from_b = b.get(query).await;
        assert_eq!(from_a.status, 200, "{query}: {}", from_a.text());
        assert_eq!(listing(&from_a.json()), listing(&from_b.json()), "{query}");
    }
    assert_eq!(a.get("/tasks?indexUids=movies").await.json()["total"], 2);
    // One gateway aligns the nodes' keys for both: they never create a key twice.
    for gw in [&ga, &gb] {
        assert!(!gw.log().contains("could not create key"), "{}", gw.log());
    }

    // Deleted through B: gone through A.
    let deletion = b
        .call("DELETE", &format!("/tasks?uids={first}"), None, b"")
        .await;
    assert_eq!(deletion.status, 200, "{}", deletion.text());
    let done = a.wait(deletion.json()["taskUid"].as_u64().unwrap()).await;
    assert_eq!(done["details"]["deletedTasks"], 1, "{done}");
    assert_eq!(a.get(&format!("/tasks/{first}")).await.status, 404);

    // A webhook created through A is called once for a write through B, whichever gateway
    // saw the task finish.
    let (url, calls) = receiver().await;
    let hook = a.json("POST", "/webhooks", &json!({"url": url})).await;
    assert_eq!(hook.status, 201, "{}", hook.text());
    assert_eq!(
        b.get("/webhooks").await.json()["results"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Awaited through A only: B, where it was written, may never refresh it.
    let hooked = add(&mut b, "books", 4).await;
    a.wait(hooked).await;
    let called = eventually(Duration::from_secs(5), async || {
        calls.lock().unwrap().len() == 1
    })
    .await;
    assert!(called, "the webhook was not called");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let bodies: Vec<String> = calls
        .lock()
        .unwrap()
        .iter()
        .map(|m| gunzip(&m.body))
        .collect();
    assert_eq!(bodies.len(), 1, "called once: {bodies:?}");
    let view: Value = serde_json::from_str(bodies[0].trim()).unwrap();
    assert_eq!(view["uid"], hooked, "{view}");

    // A third gateway whose configuration lists other nodes: the others notice.
    let gc = gateway(&nodes[..1], &redis).await;
    let noticed = eventually(Duration::from_secs(10), async || {
        ga.metric("miroir_state_topology_disagreements").await == Some(1.0)
    })
    .await;
    assert!(noticed, "gateway A did not notice the disagreement");
    let topology = a.get("/_miroir/topology").await.json();
    let peers = topology["peers"].as_array().unwrap();
    assert_eq!(
        peers.iter().filter(|p| p["agrees"] == false).count(),
        1,
        "{}",
        topology["peers"]
    );
    assert_eq!(peers.iter().filter(|p| p["agrees"] == true).count(), 1);
    drop(gc);

    // A reload through A plans moves for the whole cluster; B follows the shared state and
    // steers the same moves: canceled through B, they end on both.
    ga.write_config(&entries(&nodes[..1]), &shared(&redis));
    ga.sighup();
    let followed = eventually(Duration::from_secs(10), async || {
        let view = b.get("/_miroir/rebalance").await.json();
        view["moves"].as_array().is_some_and(|m| !m.is_empty())
    })
    .await;
    assert!(followed, "B did not see A's moves; log:\n{}", gb.log());
    let resp = b
        .json("POST", "/_miroir/rebalance/cancel", &json!({}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let canceled = resp.json()["canceled"].clone();
    assert!(
        canceled.as_array().is_some_and(|ids| !ids.is_empty()),
        "nothing was canceled: {canceled}"
    );
    let settled = eventually(Duration::from_secs(60), async || {
        let va = a.get("/_miroir/rebalance").await.json();
        let vb = b.get("/_miroir/rebalance").await.json();
        let pa = a.get("/_miroir/topology").await.json()["placement"].clone();
        let pb = b.get("/_miroir/topology").await.json()["placement"].clone();
        va["active"] == 0 && vb["active"] == 0 && pa == pb && va["moves"] == vb["moves"]
    })
    .await;
    assert!(
        settled,
        "A and B disagree after the cancel; logs:\n{}\n{}",
        ga.log(),
        gb.log()
    );
    let view = a.get("/_miroir/rebalance").await.json();
    let phases: Vec<&str> = view["moves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["phase"].as_str().unwrap())
        .collect();
    assert!(
        phases.iter().all(|p| *p == "canceled" || *p == "done") && phases.contains(&"canceled"),
        "{view}"
    );
    let driving = [
        a.get("/_miroir/rebalance").await.json()["driving"] == true,
        b.get("/_miroir/rebalance").await.json()["driving"] == true,
    ];
    assert_eq!(
        driving.iter().filter(|d| **d).count(),
        1,
        "one of the two gateways drives"
    );

    // Redis down: searches still work, a write is refused at once and nothing changes.
    redis.stop();
    let search = a
        .json("POST", "/indexes/movies/search", &json!({"q": ""}))
        .await;
    assert_eq!(search.status, 200, "{}", search.text());
    let started = Instant::now();
    let refused = a
        .json("POST", "/indexes/movies/documents", &json!([{"id": 9}]))
        .await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.json()["code"], "miroir_state_unavailable");
    assert!(
        refused
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("retry-after")),
        "{:?}",
        refused.headers
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}; log:\n{}",
        started.elapsed(),
        ga.log()
    );
    let docs = a.get("/indexes/movies/documents/9").await;
    assert_eq!(docs.status, 404, "nothing was written: {}", docs.text());

    // Redis back (empty here: a restart without persistence): writes go through again,
    // with uids above every one handed out before.
    let _redis = RedisServer::start_on(redis.port).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let uid = loop {
        let resp = b
            .json("POST", "/indexes/movies/documents", &json!([{"id": 10}]))
            .await;
        if resp.status == 202 {
            break resp.json()["taskUid"].as_u64().unwrap();
        }
        assert_eq!(resp.status, 503, "{}", resp.text());
        assert!(Instant::now() < deadline, "Redis is back, writes are not");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        uid > third,
        "uid {uid} after {third}: never handed out twice"
    );
    assert_eq!(a.wait(uid).await["status"], "succeeded");
}
