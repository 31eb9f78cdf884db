//! Browsing without `sort` lists documents in insertion order through the gateway, as one
//! node does: batches in every format, replacements and partial updates keep a document's
//! place, every page agrees with the whole list, and the gateway's fields never show. Against
//! test nodes, and against real Meilisearch (one node for reference, the gateway over three)
//! when a binary is present.

mod support;

use serde_json::{json, Value};
use support::fake_node::FakeNode;
use support::gateway::{Extra, GatewayProcess, NodeEntry};
use support::meili::{self, ReferenceAndFleet};
use support::meili_api::Api;

const KEY: &str = "miroir-order-master-key-0123456789";

/// Ids in a scrambled order, so neither id order nor shard order is insertion order.
fn scrambled(prefix: &str, n: u64, step: u64) -> Vec<String> {
    (0..n)
        .map(|i| format!("{prefix}{}", (i * step) % n))
        .collect()
}

/// Writes four batches (JSON, NDJSON, a partial update, CSV), each mixing new documents with
/// ones already stored; returns the ids in the order they were first inserted.
async fn write_batches(api: &mut Api, index: &str) -> Vec<String> {
    let mut expected: Vec<String> = Vec::new();
    let mut note = |ids: &[String]| {
        for id in ids {
            if !expected.contains(id) {
                expected.push(id.clone());
            }
        }
    };
    let path = format!("/indexes/{index}/documents?primaryKey=id");
    let first = scrambled("a", 40, 17);
    let docs: Vec<Value> = first.iter().map(|id| json!({"id": id, "v": 1})).collect();
    let body = serde_json::to_vec(&docs).unwrap();
    let task = api
        .write("POST", &path, Some("application/json"), &body)
        .await;
    assert_eq!(task["status"], "succeeded", "{task}");
    note(&first);

    // Replacements of stored documents first, then new ones.
    let mut second: Vec<String> = vec![first[30].clone(), first[2].clone(), first[11].clone()];
    second.extend(scrambled("b", 20, 7));
    let ndjson: String = second
        .iter()
        .map(|id| format!("{}\n", json!({"id": id, "v": 2})))
        .collect();
    let task = api
        .write(
            "POST",
            &path,
            Some("application/x-ndjson"),
            ndjson.as_bytes(),
        )
        .await;
    assert_eq!(task["status"], "succeeded", "{task}");
    note(&second);

    // A partial update: new documents interleaved with stored ones, one repeated.
    let third: Vec<String> = ["c1", "a5", "c0", "b3", "c2", "c1", "a39"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let docs: Vec<Value> = third.iter().map(|id| json!({"id": id, "w": 3})).collect();
    let task = api
        .write(
            "PUT",
            &path,
            Some("application/json"),
            &serde_json::to_vec(&docs).unwrap(),
        )
        .await;
    assert_eq!(task["status"], "succeeded", "{task}");
    note(&third);

    let fourth = ["d4", "a0", "d1", "d3", "b19", "d0", "d2"];
    let csv: String = std::iter::once("id,v\n".to_string())
        .chain(fourth.iter().map(|id| format!("{id},4\n")))
        .collect();
    let task = api
        .write("POST", &path, Some("text/csv"), csv.as_bytes())
        .await;
    assert_eq!(task["status"], "succeeded", "{task}");
    note(&fourth.map(str::to_string));
    expected
}

fn ids_of(page: &Value) -> Vec<String> {
    page["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {page}"))
        .iter()
        .map(|d| d["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The whole list (GET, then POST fetch), then page by page; checks no gateway field shows.
async fn browse(api: &mut Api, index: &str) -> Vec<String> {
    let whole = api
        .get(&format!("/indexes/{index}/documents?limit=1000"))
        .await;
    assert_eq!(whole.status, 200, "{}", whole.text());
    let text = whole.text();
    assert!(!text.contains("_miroir"), "{text}");
    let all = ids_of(&whole.json());
    let fetched = api
        .json(
            "POST",
            &format!("/indexes/{index}/documents/fetch"),
            &json!({"limit": 1000, "fields": ["id"]}),
        )
        .await;
    assert_eq!(fetched.status, 200, "{}", fetched.text());
    assert_eq!(ids_of(&fetched.json()), all, "fetch and browse disagree");
    let mut paged = Vec::new();
    for offset in (0..all.len()).step_by(9) {
        let page = api
            .get(&format!(
                "/indexes/{index}/documents?offset={offset}&limit=9&fields=id,v"
            ))
            .await;
        assert_eq!(page.status, 200, "{}", page.text());
        paged.extend(ids_of(&page.json()));
    }
    assert_eq!(paged, all, "pages disagree with the whole list");
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_browse_in_insertion_order_over_test_nodes() {
    let reference = FakeNode::start("ref", None).await;
    let mut nodes = Vec::new();
    for name in ["n1", "n2", "n3"] {
        nodes.push(FakeNode::start(name, None).await);
    }
    let entries: Vec<NodeEntry> = nodes
        .iter()
        .map(|n| NodeEntry::new(&n.name, &n.url(), "a"))
        .collect();
    let gw = GatewayProcess::start(&entries, &Extra::default(), &[]).await;
    let mut one = Api::new(reference.addr, None);
    let mut api = Api::new(gw.addr, None);

    let expected = write_batches(&mut one, "ord").await;
    assert_eq!(browse(&mut one, "ord").await, expected, "the test node");
    assert_eq!(write_batches(&mut api, "ord").await, expected);
    assert_eq!(browse(&mut api, "ord").await, expected, "the gateway");
    // Every node holds a part: the order is not one node's.
    assert!(nodes.iter().all(|n| !n.documents("ord").is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_browse_in_insertion_order_over_real_meilisearch() {
    let Some(bin) = meili::binary() else {
        meili::skip_notice("documents_browse_in_insertion_order_over_real_meilisearch");
        return;
    };
    let ReferenceAndFleet {
        single,
        nodes: _nodes,
        gateway,
    } = ReferenceAndFleet::start(&bin, KEY).await;
    let mut one = Api::new(single.addr, Some(KEY));
    let mut api = Api::new(gateway.addr, Some(KEY));
    let expected = write_batches(&mut one, "ord").await;
    assert_eq!(browse(&mut one, "ord").await, expected, "one node");
    assert_eq!(write_batches(&mut api, "ord").await, expected);
    assert_eq!(browse(&mut api, "ord").await, expected, "the gateway");
}
