//! A bounded task history: past `tasks.max_tasks`, the oldest finished tasks are deleted
//! through the gateway and on the nodes, with a `taskDeletion` task that says so, as
//! Meilisearch prunes its own queue; listings answer the same after a restart (the index
//! behind them is rebuilt from the store). On test nodes.

use crate::support;

use std::time::Duration;

use serde_json::json;
use support::fake_node::FakeNode;
use support::gateway::{eventually, Extra, GatewayProcess, NodeEntry};
use support::meili_api::{result_uids, Api};

const KEY: &str = "task-history-master-key-01234";

/// Documents each node's own task list holds of `kind`.
async fn node_tasks(node: &FakeNode, kind: &str) -> u64 {
    let mut api = Api::new(node.addr, Some(KEY));
    let page = api.get(&format!("/tasks?types={kind}&limit=0")).await;
    page.json()["total"].as_u64().unwrap()
}

/// Adds one document (to `movies` or `books`) and waits for it; the task uid.
async fn write(api: &mut Api, id: u64) -> u64 {
    let index = if id % 2 == 0 { "movies" } else { "books" };
    let path = format!("/indexes/{index}/documents");
    let body = json!([{ "id": id }]).to_string();
    let task = api
        .write("POST", &path, Some("application/json"), body.as_bytes())
        .await;
    assert_eq!(task["status"], "succeeded", "{task}");
    task["uid"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oldest_finished_tasks_are_pruned_here_and_on_the_nodes() {
    let mut nodes = Vec::new();
    for name in ["n1", "n2"] {
        nodes.push(FakeNode::start(name, Some(KEY)).await);
    }
    let entries: Vec<NodeEntry> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| NodeEntry::new(&format!("n{i}"), &n.url(), "a"))
        .collect();
    let extra = Extra {
        tail: "[tasks]\nmax_tasks = 12\n".into(),
        ..Extra::default()
    };
    let mut gw = GatewayProcess::start(&entries, &extra, &[("MIROIR_MASTER_KEY", KEY)]).await;
    let mut api = Api::new(gw.addr, Some(KEY));

    let mut written = Vec::new();
    for id in 0..11u64 {
        written.push(write(&mut api, id).await);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let all = api.get("/tasks?limit=0").await.json();
    assert_eq!(all["total"], 11, "below the bound nothing is pruned: {all}");
    let on_nodes_before = node_tasks(&nodes[0], "documentAdditionOrUpdate").await
        + node_tasks(&nodes[1], "documentAdditionOrUpdate").await;
    assert!(on_nodes_before >= 11, "{on_nodes_before}");

    for id in 11..15u64 {
        written.push(write(&mut api, id).await);
    }
    // The refresher prunes within a round or two of the store reaching 12 tasks.
    let pruned = eventually(Duration::from_secs(10), async || {
        api.get(&format!("/tasks/{}", written[0])).await.status == 404
    })
    .await;
    assert!(pruned, "the oldest task is still listed");
    let deletions = api.get("/tasks?types=taskDeletion").await.json();
    let deletion = &deletions["results"][0];
    assert_eq!(deletion["status"], "succeeded", "{deletion}");
    let deleted = deletion["details"]["deletedTasks"].as_u64().unwrap();
    assert!(deleted >= 12, "every finished task goes: {deletion}");
    assert_eq!(deletion["details"]["matchedTasks"], deleted);
    assert!(
        deletion["details"]["originalFilter"]
            .as_str()
            .unwrap()
            .starts_with("?beforeEnqueuedAt="),
        "{deletion}"
    );
    assert!(
        deletion["enqueuedAt"].as_str() <= deletion["startedAt"].as_str(),
        "{deletion}"
    );
    let all = api.get("/tasks?limit=0").await.json();
    assert!(
        all["total"].as_u64().unwrap() < 12,
        "the store is back under its bound: {all}"
    );
    // The node tasks behind the deleted ones are gone too.
    let on_nodes_after = eventually(Duration::from_secs(5), async || {
        node_tasks(&nodes[0], "documentAdditionOrUpdate").await
            + node_tasks(&nodes[1], "documentAdditionOrUpdate").await
            < on_nodes_before
    })
    .await;
    assert!(on_nodes_after, "the nodes kept every task");
    // Later writes are listed as usual.
    for id in 15..17u64 {
        let uid = write(&mut api, id).await;
        assert_eq!(api.get(&format!("/tasks/{uid}")).await.status, 200);
    }

    // Filters and paging answer the same once the index is rebuilt from the store.
    let queries = [
        "/tasks?limit=100",
        "/tasks?limit=2&from=16",
        "/tasks?indexUids=movies&statuses=succeeded",
        "/tasks?types=taskDeletion,documentAdditionOrUpdate&reverse=true",
        "/batches?limit=3",
    ];
    let mut before = Vec::new();
    for q in queries {
        before.push(api.get(q).await.json());
    }
    gw.restart().await;
    let mut api = Api::new(gw.addr, Some(KEY));
    for (q, expected) in queries.iter().zip(&before) {
        let after = api.get(q).await.json();
        assert_eq!(result_uids(&after), result_uids(expected), "{q}");
        assert_eq!(after["total"], expected["total"], "{q}");
        assert_eq!(after["next"], expected["next"], "{q}");
    }
}
