//! Hardening, against Meilisearch-compatible test nodes: a key sees and touches only the
//! tasks of its indexes, and the shard tag cannot be used as an attribute.

use crate::support;

use serde_json::json;
use support::fake_node::FakeNode;
use support::gateway::{Extra, GatewayProcess, NodeEntry};
use support::meili_api::{result_uids, Api};

const MASTER: &str = "a-master-key-of-sixteen-bytes-or-more";

async fn start() -> (Vec<FakeNode>, GatewayProcess, Api) {
    let nodes = FakeNode::three(Some(MASTER)).await;
    let entries = NodeEntry::for_fakes(&nodes);
    let gw = GatewayProcess::start(
        &entries,
        &Extra::default(),
        &[("MIROIR_MASTER_KEY", MASTER)],
    )
    .await;
    let api = Api::new(gw.addr, Some(MASTER));
    (nodes, gw, api)
}

/// Adds two documents to `index` and waits for the task; its uid.
async fn add(api: &mut Api, index: &str) -> u64 {
    let docs = json!([{"id": 1, "title": "a"}, {"id": 2, "title": "b"}]);
    let body = docs.to_string();
    let resp = api
        .call(
            "POST",
            &format!("/indexes/{index}/documents"),
            Some("application/json"),
            body.as_bytes(),
        )
        .await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    let uid = resp.json()["taskUid"].as_u64().unwrap();
    assert_eq!(api.wait(uid).await["status"], "succeeded");
    uid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_sees_and_touches_only_the_tasks_of_its_indexes() {
    let (_nodes, gw, mut admin) = start().await;
    let movies = add(&mut admin, "movies").await;
    let other = add(&mut admin, "other").await;
    let created = admin
        .json(
            "POST",
            "/keys",
            &json!({"actions": ["tasks.get", "tasks.delete", "tasks.cancel"], "indexes": ["movies"], "expiresAt": null}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let key = created.json()["key"].as_str().unwrap().to_string();
    let mut user = Api::new(gw.addr, Some(&key));

    // Listing: only the key's index (a node's `total` counts every matching task).
    let listed = user.get("/tasks").await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert_eq!(result_uids(&listed.json()), [movies]);
    let listed = user.get("/tasks?indexUids=other").await.json();
    assert!(result_uids(&listed).is_empty(), "{listed}");

    // One task: another index's is not found, as on a node.
    assert_eq!(user.get(&format!("/tasks/{movies}")).await.status, 200);
    let hidden = user.get(&format!("/tasks/{other}")).await;
    assert_eq!(hidden.status, 404);
    assert_eq!(hidden.json()["code"], "task_not_found");
    assert_eq!(
        hidden.json()["message"],
        format!("Task `{other}` not found.")
    );

    // Deleting by another index's filter matches nothing; the tasks stay.
    let deleted = user
        .call("DELETE", "/tasks?indexUids=other", None, b"")
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    let deletion = admin
        .wait(deleted.json()["taskUid"].as_u64().unwrap())
        .await;
    assert_eq!(deletion["details"]["matchedTasks"], 0, "{deletion}");
    assert_eq!(admin.get(&format!("/tasks/{other}")).await.status, 200);
    let deleted = user
        .call(
            "DELETE",
            &format!("/tasks?uids={movies},{other}"),
            None,
            b"",
        )
        .await;
    let deletion = admin
        .wait(deleted.json()["taskUid"].as_u64().unwrap())
        .await;
    assert_eq!(deletion["details"]["matchedTasks"], 1, "{deletion}");
    assert_eq!(admin.get(&format!("/tasks/{other}")).await.status, 200);
    assert_eq!(admin.get(&format!("/tasks/{movies}")).await.status, 404);

    // Canceling: likewise nothing outside the key's indexes is matched.
    let canceled = user
        .call("POST", "/tasks/cancel?indexUids=other", None, b"")
        .await;
    assert_eq!(canceled.status, 200, "{}", canceled.text());
    let cancelation = admin
        .wait(canceled.json()["taskUid"].as_u64().unwrap())
        .await;
    assert_eq!(cancelation["details"]["matchedTasks"], 0, "{cancelation}");

    // The master key still sees everything.
    let all = admin.get("/tasks?limit=100").await.json();
    assert!(result_uids(&all).contains(&other), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_not_served_check_the_key_first() {
    let (_nodes, gw, mut admin) = start().await;
    let mut anonymous = Api::new(gw.addr, None);
    let mut stranger = Api::new(gw.addr, Some("not-a-key"));
    for (method, path) in [
        ("POST", "/export"),
        ("GET", "/network"),
        ("DELETE", "/chats/w"),
    ] {
        let body: &[u8] = if method == "POST" { b"{}" } else { b"" };
        let ct = (method == "POST").then_some("application/json");
        let r = anonymous.call(method, path, ct, body).await;
        assert_eq!(r.status, 401, "{method} {path}: {}", r.text());
        assert_eq!(r.json()["code"], "missing_authorization_header");
        let r = stranger.call(method, path, ct, body).await;
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
        assert_eq!(r.json()["code"], "invalid_api_key");
        let r = admin.call(method, path, ct, body).await;
        assert_eq!(r.status, 501, "{method} {path}: {}", r.text());
    }
    // The routes the gateway serves itself check the key first too.
    for (method, path) in [
        ("GET", "/indexes/movies/similar?id=1"),
        ("POST", "/indexes/movies/similar"),
        ("POST", "/indexes/movies/fields"),
        ("GET", "/batches"),
        ("GET", "/webhooks"),
        ("GET", "/tasks/1/documents"),
        ("GET", "/metrics"),
    ] {
        let body: &[u8] = if method == "POST" { b"{}" } else { b"" };
        let ct = (method == "POST").then_some("application/json");
        let r = anonymous.call(method, path, ct, body).await;
        assert_eq!(r.status, 401, "{method} {path}: {}", r.text());
        let r = stranger.call(method, path, ct, body).await;
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
    }
}
