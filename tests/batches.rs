//! `/batches` through Miroir, from the gateway's tasks: each started task is a batch of its
//! own, listed, filtered and paged as a node lists its batches. On test nodes, and against a
//! single real Meilisearch node (same shape) when the binary is present.

use crate::support;

use serde_json::{json, Value};
use support::fake_node::FakeNode;
use support::gateway::{Extra, GatewayProcess, NodeEntry};
use support::meili;
use support::meili_api::{result_uids, Api};

const KEY: &str = "batches-master-key-0123456789";

async fn write(api: &mut Api, index: &str, id: u64) -> u64 {
    let resp = api
        .json(
            "POST",
            &format!("/indexes/{index}/documents"),
            &json!([{"id": id}]),
        )
        .await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    let uid = resp.json()["taskUid"].as_u64().unwrap();
    assert_eq!(api.wait(uid).await["status"], "succeeded");
    uid
}

async fn gateway(urls: &[String]) -> GatewayProcess {
    let entries: Vec<NodeEntry> = urls
        .iter()
        .enumerate()
        .map(|(i, u)| NodeEntry::new(&format!("n{i}"), u, "a"))
        .collect();
    GatewayProcess::start(&entries, &Extra::default(), &[("MIROIR_MASTER_KEY", KEY)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_the_gateway_tasks_as_a_node_shows_them() {
    let mut nodes = Vec::new();
    for name in ["n1", "n2", "n3"] {
        nodes.push(FakeNode::start(name, Some(KEY)).await);
    }
    let gw = gateway(&nodes.iter().map(|n| n.url()).collect::<Vec<_>>()).await;
    let mut api = Api::new(gw.addr, Some(KEY));
    let a = write(&mut api, "movies", 1).await;
    let b = write(&mut api, "books", 2).await;
    let c = write(&mut api, "movies", 3).await;

    let one = api.get(&format!("/batches/{b}")).await;
    assert_eq!(one.status, 200, "{}", one.text());
    let batch = one.json();
    assert_eq!(batch["uid"], b);
    assert_eq!(batch["stats"]["totalNbTasks"], 1);
    assert_eq!(batch["stats"]["indexUids"], json!({"books": 1}));
    assert_eq!(batch["stats"]["status"], json!({"succeeded": 1}));
    assert_eq!(batch["details"]["receivedDocuments"], 1);
    let task = api.get(&format!("/tasks/{b}")).await.json();
    assert_eq!(task["batchUid"], b, "a task names its batch");

    let all = api.get("/batches").await.json();
    let listed = result_uids(&all);
    assert!(listed.starts_with(&[c, b, a]), "{all}");
    assert_eq!(all["total"].as_u64(), Some(listed.len() as u64));
    let movies = api.get("/batches?indexUids=movies").await.json();
    assert_eq!(result_uids(&movies), [c, a]);
    let paged = api.get("/batches?indexUids=movies&limit=1").await.json();
    assert_eq!(
        (result_uids(&paged), paged["next"].as_u64()),
        (vec![c], Some(a))
    );
    let by_task = api.get(&format!("/batches?uids={a}")).await.json();
    assert_eq!(result_uids(&by_task), [a]);

    let missing = api.get("/batches/99999").await;
    assert_eq!(missing.status, 404, "{}", missing.text());
    assert_eq!(missing.json()["code"], "batch_not_found");
    let bad = api.get("/batches/abc").await;
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert_eq!(bad.json()["code"], "invalid_batch_uids");
    let bad_filter = api.get("/batches?statuses=done").await;
    assert_eq!(bad_filter.status, 400, "{}", bad_filter.text());
    let no_key = Api::new(gw.addr, None).get("/batches").await;
    assert_eq!(no_key.status, 401, "{}", no_key.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_have_a_nodes_shape_on_real_meilisearch() {
    let Some(bin) = meili::binary() else {
        meili::skip_notice("batches_have_a_nodes_shape_on_real_meilisearch");
        return;
    };
    let single = meili::MeiliNode::start(&bin, KEY).await;
    let mut fleet = Vec::new();
    for _ in 0..3 {
        fleet.push(meili::MeiliNode::start(&bin, KEY).await);
    }
    let gw = gateway(&fleet.iter().map(|n| n.url()).collect::<Vec<_>>()).await;
    let (mut a, mut b) = (
        Api::new(single.addr, Some(KEY)),
        Api::new(gw.addr, Some(KEY)),
    );
    write(&mut a, "movies", 1).await;
    let uid = write(&mut b, "movies", 1).await;
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    let (la, lb) = (
        a.get("/batches?limit=1").await.json(),
        b.get("/batches?limit=1").await.json(),
    );
    assert_eq!(keys(&la), keys(&lb), "{la}\n{lb}");
    let (ba, bb) = (&la["results"][0], &lb["results"][0]);
    assert_eq!(keys(ba), keys(bb), "{ba}\n{bb}");
    assert_eq!(bb["uid"], uid);
    for k in ["totalNbTasks", "status", "types", "indexUids"] {
        assert_eq!(ba["stats"][k], bb["stats"][k], "stats {k}: {ba}\n{bb}");
    }
    assert_eq!(ba["details"], bb["details"]);
    for path in [
        "/batches/abc",
        "/batches/99999",
        "/batches?statuses=done",
        "/batches?limit=-1",
    ] {
        let (ra, rb) = (a.get(path).await, b.get(path).await);
        assert_eq!((ra.status, ra.json()), (rb.status, rb.json()), "{path}");
    }
}
