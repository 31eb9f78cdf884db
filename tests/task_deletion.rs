//! A task deleted while it runs is deleted once it is done, as a node does (it processes the
//! deletion after the batch in progress). Real Meilisearch (the test nodes finish at once).

use crate::support;

use serde_json::{json, Value};
use support::meili::{self, ReferenceAndFleet};
use support::meili_api::Api;

const KEY: &str = "task-deletion-master-key-0123";

/// Adds many documents, deletes the task at once, waits for the deletion; what it reported
/// and whether the task is still found.
async fn delete_while_running(api: &mut Api) -> (Value, u16) {
    let docs: Vec<Value> = (0..30_000)
        .map(|i| json!({"id": i, "text": format!("word{} other{}", i % 97, i % 13)}))
        .collect();
    let resp = api
        .json("POST", "/indexes/big/documents", &json!(docs))
        .await;
    let uid = resp.json()["taskUid"].as_u64().unwrap();
    // The gateway answers once the running task is done (up to its 30 s request deadline):
    // on a loaded machine the batch can take longer than the client's usual 10 s.
    api.client.timeout = std::time::Duration::from_secs(40);
    let deletion = api
        .call("DELETE", &format!("/tasks?uids={uid}"), None, b"")
        .await;
    assert!(deletion.status < 300, "{}", deletion.text());
    let done = api.wait(deletion.json()["taskUid"].as_u64().unwrap()).await;
    let after = api.get(&format!("/tasks/{uid}")).await.status;
    (done["details"].clone(), after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_task_deleted_is_gone_once_the_deletion_succeeds() {
    let Some(bin) = meili::binary() else {
        meili::skip_notice("a_running_task_deleted_is_gone_once_the_deletion_succeeds");
        return;
    };
    let fleet = ReferenceAndFleet::start(&bin, KEY).await;
    let mut single = Api::new(fleet.single.addr, Some(KEY));
    let mut miroir = Api::new(fleet.gateway.addr, Some(KEY));
    let (node_details, node_after) = delete_while_running(&mut single).await;
    let (details, after) = delete_while_running(&mut miroir).await;
    assert_eq!(node_after, 404, "the node itself: {node_details}");
    assert_eq!(
        (after, details["deletedTasks"].clone()),
        (404, json!(1)),
        "{details}"
    );
    assert_eq!(details["matchedTasks"], node_details["matchedTasks"]);
}
