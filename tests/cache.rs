//! The search cache end to end, over Meilisearch-compatible test nodes: a client that waited
//! for its write never reads an older answer, and a key never gets another key's answer.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::fake_node::FakeNode;
use support::gateway::{Extra, GatewayProcess, NodeEntry};
use support::meili_api::Api;

const MASTER: &str = "a-master-key-of-sixteen-bytes-or-more";

async fn start(cache: &str) -> (Vec<FakeNode>, GatewayProcess, Api) {
    let nodes = FakeNode::three(Some(MASTER)).await;
    let entries = NodeEntry::for_fakes(&nodes);
    let extra = Extra {
        tail: cache.to_string(),
        ..Extra::default()
    };
    let gw = GatewayProcess::start(&entries, &extra, &[("MIROIR_MASTER_KEY", MASTER)]).await;
    let api = Api::new(gw.addr, Some(MASTER));
    (nodes, gw, api)
}

/// Polls the task every millisecond or two until it is final, as an eager SDK would.
async fn wait(api: &mut Api, uid: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let task = api.get(&format!("/tasks/{uid}")).await.json();
        if matches!(task["status"].as_str(), Some("succeeded" | "failed")) {
            return task;
        }
        assert!(Instant::now() < deadline, "task {uid} never finished");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Puts one document in `index` and waits for it.
async fn fill(api: &mut Api, index: &str) {
    let docs = json!([{"id": 1, "title": "a"}]);
    let resp = api
        .json("POST", &format!("/indexes/{index}/documents"), &docs)
        .await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    let uid = resp.json()["taskUid"].as_u64().unwrap();
    assert_eq!(wait(api, uid).await["status"], "succeeded");
}

async fn search(api: &mut Api, index: &str, body: &Value) -> (Value, Option<String>) {
    let resp = api
        .json("POST", &format!("/indexes/{index}/search"), body)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let from = resp.header("x-miroir-cache").map(str::to_string);
    (resp.json(), from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_waited_for_its_write_never_reads_an_older_answer() {
    let (_nodes, gw, mut api) = start("[cache]\nenabled = true\n").await;
    // The index holds one document, rewritten every round.
    let query = json!({"q": ""});
    let mut hits = 0;
    for round in 0..1000u64 {
        let doc = json!([{"id": 7, "round": round}]);
        let resp = api.json("POST", "/indexes/movies/documents", &doc).await;
        assert_eq!(resp.status, 202, "{}", resp.text());
        let uid = resp.json()["taskUid"].as_u64().unwrap();
        assert_eq!(wait(&mut api, uid).await["status"], "succeeded");
        // Twice: the first answer may come from the nodes, the second from the cache.
        for _ in 0..2 {
            let (answer, from) = search(&mut api, "movies", &query).await;
            assert_eq!(
                answer["hits"][0]["round"], round,
                "round {round}: stale answer ({from:?}): {answer}"
            );
            hits += usize::from(from.as_deref() == Some("hit"));
        }
    }
    assert!(hits >= 900, "the cache served {hits} answers of 2000");
    let served = gw
        .metric("miroir_cache_lookups_total{result=\"hit\"}")
        .await;
    assert_eq!(served, Some(hits as f64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_do_not_share_answers_and_a_revoked_key_gets_none() {
    let (_nodes, gw, mut admin) = start("[cache]\nenabled = true\n").await;
    for index in ["movies", "secret"] {
        fill(&mut admin, index).await;
    }
    let key_for =
        |indexes: Value| json!({"actions": ["search"], "indexes": indexes, "expiresAt": null});
    let mut keys = Vec::new();
    for indexes in [json!(["*"]), json!(["movies"])] {
        let created = admin.json("POST", "/keys", &key_for(indexes)).await;
        assert_eq!(created.status, 201, "{}", created.text());
        keys.push(created.json());
    }
    let mut all = Api::new(gw.addr, keys[0]["key"].as_str());
    let mut movies_only = Api::new(gw.addr, keys[1]["key"].as_str());
    let query = json!({"q": ""});

    let (_, from) = search(&mut all, "secret", &query).await;
    assert_eq!(from.as_deref(), Some("miss"));
    let (_, from) = search(&mut all, "secret", &query).await;
    assert_eq!(from.as_deref(), Some("hit"));
    // The same request with another key is asked of the nodes, which refuse it.
    let refused = movies_only
        .json("POST", "/indexes/secret/search", &query)
        .await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(refused.header("x-miroir-cache"), Some("miss"));

    // A deleted key gets nothing from the cache.
    let uid = keys[0]["uid"].as_str().unwrap();
    let deleted = admin
        .call("DELETE", &format!("/keys/{uid}"), None, b"")
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    let resp = all.json("POST", "/indexes/secret/search", &query).await;
    assert!(
        resp.status == 401 || resp.status == 403,
        "{} {}",
        resp.status,
        resp.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_by_default_and_per_index_pattern() {
    let (_nodes, _gw, mut api) = start("").await;
    fill(&mut api, "movies").await;
    let resp = api.json("POST", "/indexes/movies/search", &json!({})).await;
    assert_eq!(resp.header("x-miroir-cache"), None);
    drop(api);

    let (_nodes, _gw, mut api) =
        start("[cache]\nenabled = true\nskip_indexes = [\"logs*\"]\n").await;
    for index in ["movies", "books", "logs-1"] {
        fill(&mut api, index).await;
    }
    let multi = json!({"queries": [{"indexUid": "movies"}, {"indexUid": "logs-1"}]});
    for _ in 0..2 {
        let resp = api.json("POST", "/multi-search", &multi).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.header("x-miroir-cache"), None, "logs* is not cached");
    }
    let multi = json!({"queries": [{"indexUid": "movies"}, {"indexUid": "books"}]});
    let first = api.json("POST", "/multi-search", &multi).await;
    let second = api.json("POST", "/multi-search", &multi).await;
    assert_eq!(first.header("x-miroir-cache"), Some("miss"));
    assert_eq!(second.header("x-miroir-cache"), Some("hit"));
    assert_eq!(first.json(), second.json());
}
