//! One set of API keys through Miroir: the nodes' default keys, keys created straight on a
//! node and keys deleted while a node was down end up the same on every node, so a key read
//! from `GET /keys` (and a tenant token signed with it) works on the whole fleet. Run on
//! test nodes, and on real Meilisearch when the binary is present.

use crate::support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};
use support::fake_tenant;
use support::gateway::{eventually, Extra, GatewayProcess};
use support::meili;
use support::meili_api::Api;
use support::rebalance_fleet::{entries, TestNode, KEY};

const DEFAULTS: [&str; 4] = [
    "Default Search API Key",
    "Default Admin API Key",
    "Default Read-Only Admin API Key",
    "Default Chat API Key",
];

async fn start_nodes(bin: Option<&std::path::PathBuf>) -> Vec<TestNode> {
    let mut nodes = Vec::new();
    for i in 1..=3 {
        nodes.push(match bin {
            Some(bin) => TestNode::Real(meili::MeiliNode::start(bin, KEY).await),
            None => TestNode::Fake(
                support::fake_node::FakeNode::start(&format!("n{i}"), Some(KEY)).await,
            ),
        });
    }
    nodes
}

async fn listed(addr: std::net::SocketAddr) -> Vec<Value> {
    let resp = Api::new(addr, Some(KEY)).get("/keys?limit=1000").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()["results"].as_array().unwrap().clone()
}

fn uids(keys: &[Value]) -> BTreeSet<String> {
    keys.iter()
        .map(|k| k["uid"].as_str().unwrap().to_string())
        .collect()
}

/// Whether every node lists the same keys, one of each default among them, and `wanted`.
async fn aligned(nodes: &[TestNode], wanted: &[&str], unwanted: &[&str]) -> bool {
    let mut sets = Vec::new();
    for node in nodes {
        let keys = listed(node.addr()).await;
        let one_each = DEFAULTS
            .iter()
            .all(|name| keys.iter().filter(|k| k["name"] == *name).count() == 1);
        if !one_each {
            return false;
        }
        sets.push(uids(&keys));
    }
    sets.windows(2).all(|w| w[0] == w[1])
        && wanted.iter().all(|u| sets[0].contains(*u))
        && unwanted.iter().all(|u| !sets[0].contains(*u))
}

fn named<'a>(keys: &'a [Value], name: &str) -> &'a Value {
    keys.iter().find(|k| k["name"] == name).unwrap()
}

async fn keys_are_one_set(bin: Option<&std::path::PathBuf>) {
    let mut nodes = start_nodes(bin).await;
    // A key made straight on one node before the gateway ever saw the fleet.
    let early = "0b5e2d3c-1a2b-4c3d-8e4f-000000000001";
    let body = json!({"uid": early, "name": "early", "actions": ["search"], "indexes": ["*"], "expiresAt": null});
    let resp = Api::new(nodes[1].addr(), Some(KEY))
        .json("POST", "/keys", &body)
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());

    let gw = GatewayProcess::start(
        &entries(&nodes, &[0, 1, 2]),
        &Extra::default(),
        &[("MIROIR_MASTER_KEY", KEY)],
    )
    .await;
    assert!(
        eventually(Duration::from_secs(20), async || aligned(
            &nodes,
            &[early],
            &[]
        )
        .await)
        .await,
        "keys not aligned: {}",
        gw.log()
    );

    // The default keys, as an SDK reads them through the gateway, work on every node.
    let keys = listed(gw.addr).await;
    assert_eq!(keys.len(), 5, "{keys:?}");
    let admin = named(&keys, "Default Admin API Key")["key"]
        .as_str()
        .unwrap()
        .to_string();
    let mut api = Api::new(gw.addr, Some(&admin));
    let docs: Vec<Value> = (0..40)
        .map(|i| json!({"id": i, "genre": if i % 4 == 0 { "drama" } else { "comedy" }}))
        .collect();
    let resp = api
        .json("POST", "/indexes/movies/documents", &json!(docs))
        .await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    let task = api.wait(resp.json()["taskUid"].as_u64().unwrap()).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    let resp = api
        .json(
            "PATCH",
            "/indexes/movies/settings",
            &json!({"filterableAttributes": ["genre"]}),
        )
        .await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    api.wait(resp.json()["taskUid"].as_u64().unwrap()).await;

    let search = named(&keys, "Default Search API Key");
    let mut searcher = Api::new(gw.addr, search["key"].as_str());
    let resp = searcher
        .json("POST", "/indexes/movies/search", &json!({"limit": 100}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["estimatedTotalHits"], 40);

    // A tenant token signed with it: its rule applies on every shard.
    let token = fake_tenant::sign(
        search["uid"].as_str().unwrap(),
        search["key"].as_str().unwrap(),
        json!({"movies": {"filter": "genre = drama"}}),
    );
    let mut tenant = Api::new(gw.addr, Some(&token));
    let resp = tenant
        .json("POST", "/indexes/movies/search", &json!({"limit": 100}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let hits = resp.json()["hits"].as_array().unwrap().clone();
    assert_eq!(hits.len(), 10, "{hits:?}");
    assert!(hits.iter().all(|h| h["genre"] == "drama"), "{hits:?}");
    let other = fake_tenant::sign(
        search["uid"].as_str().unwrap(),
        search["key"].as_str().unwrap(),
        json!(["books"]),
    );
    let resp = Api::new(gw.addr, Some(&other))
        .json("POST", "/indexes/movies/search", &json!({}))
        .await;
    assert_eq!(resp.status, 403, "{}", resp.text());

    // A key deleted through the gateway while a node was down is deleted there on its return;
    // one created while it was down is created there.
    let mut admin_api = Api::new(gw.addr, Some(KEY));
    stop(&mut nodes[2]);
    let resp = admin_api
        .call("DELETE", &format!("/keys/{early}"), None, b"")
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    let body = json!({"name": "late", "actions": ["search"], "indexes": ["*"], "expiresAt": null});
    let resp = admin_api.json("POST", "/keys", &body).await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    let late = resp.json()["uid"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(500)).await;
    start(&mut nodes[2]).await;
    assert!(
        eventually(Duration::from_secs(30), async || {
            aligned(&nodes, &[late.as_str()], &[early]).await
        })
        .await,
        "keys not aligned after a node's return: {}",
        gw.log()
    );
}

fn stop(node: &mut TestNode) {
    match node {
        TestNode::Fake(n) => n.stop(),
        TestNode::Real(n) => n.kill(),
    }
}

async fn start(node: &mut TestNode) {
    match node {
        TestNode::Fake(n) => n.restart().await,
        TestNode::Real(n) => n.restart().await,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_one_set_on_test_nodes() {
    keys_are_one_set(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_one_set_on_real_meilisearch() {
    let Some(bin) = meili::binary() else {
        meili::skip_notice("keys_are_one_set_on_real_meilisearch");
        return;
    };
    keys_are_one_set(Some(&bin)).await;
}
