//! Browsing without `sort` lists documents in insertion order through the gateway, as one
//! node does: batches in every format, replacements and partial updates keep a document's
//! place, every page agrees with the whole list, the order survives a rebalance, and the
//! gateway's fields never show (documents, settings, task details, errors). Against test
//! nodes, and against real Meilisearch (one node for reference, the gateway over three) when a
//! binary is present.

use crate::support;

use std::time::Duration;

use serde_json::{json, Value};
use support::fake_node::FakeNode;
use support::gateway::{Extra, GatewayProcess, NodeEntry};
use support::meili::{self, ReferenceAndFleet};
use support::meili_api::Api;
use support::rebalance_fleet::{self as fleet, start_nodes};

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

/// What a client sees of `sortableAttributes` through a round of writes, resets and a refused
/// sort: each step's answer, without per-run fields.
async fn sortable_round_trip(api: &mut Api, index: &str) -> Vec<Value> {
    let route = format!("/indexes/{index}/settings/sortable-attributes");
    let mut seen = Vec::new();
    let mut step = |v: Value| {
        let mut v = v;
        if let Some(o) = v.as_object_mut() {
            for k in [
                "uid",
                "batchUid",
                "enqueuedAt",
                "startedAt",
                "finishedAt",
                "duration",
            ] {
                o.remove(k);
            }
        }
        seen.push(v);
    };
    step(api.get(&route).await.json());
    let put = api.json("PUT", &route, &json!(["v"])).await;
    step(api.wait(put.json()["taskUid"].as_u64().unwrap()).await["details"].clone());
    step(api.get(&route).await.json());
    step(api.get(&format!("/indexes/{index}/settings")).await.json()["sortableAttributes"].clone());
    let refused = api
        .json(
            "POST",
            &format!("/indexes/{index}/documents/fetch"),
            &json!({"sort": ["w:asc"]}),
        )
        .await;
    step(json!({"status": refused.status, "body": refused.json()}));
    // The gateway's field does not exist for a client.
    for (path, body) in [
        ("documents/fetch", json!({"sort": ["_miroir_order:asc"]})),
        ("search", json!({"sort": ["_miroir_order:asc", "v:asc"]})),
        ("search", json!({"filter": "_miroir_order EXISTS"})),
    ] {
        let answer = api
            .json("POST", &format!("/indexes/{index}/{path}"), &body)
            .await;
        step(json!({"status": answer.status, "body": answer.json()}));
    }
    let sorted = api
        .json(
            "POST",
            &format!("/indexes/{index}/documents/fetch"),
            &json!({"sort": ["v:desc"], "fields": ["id", "v"], "limit": 5}),
        )
        .await;
    step(json!({"status": sorted.status, "total": sorted.json()["total"]}));
    let reset = api.call("DELETE", &route, None, b"").await;
    step(api.wait(reset.json()["taskUid"].as_u64().unwrap()).await["details"].clone());
    step(api.get(&route).await.json());
    let refused = api
        .json(
            "POST",
            &format!("/indexes/{index}/search"),
            &json!({"sort": ["v:asc"]}),
        )
        .await;
    step(json!({"status": refused.status, "body": refused.json()}));
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_browse_in_insertion_order_over_test_nodes() {
    let reference = FakeNode::start("ref", None).await;
    let nodes = FakeNode::three(None).await;
    let entries = NodeEntry::for_fakes(&nodes);
    let gw = GatewayProcess::start(&entries, &Extra::default(), &[]).await;
    let mut one = Api::new(reference.addr, None);
    let mut api = Api::new(gw.addr, None);

    let expected = write_batches(&mut one, "ord").await;
    assert_eq!(browse(&mut one, "ord").await, expected, "the test node");
    assert_eq!(write_batches(&mut api, "ord").await, expected);
    assert_eq!(browse(&mut api, "ord").await, expected, "the gateway");
    // Every node holds a part: the order is not one node's.
    assert!(nodes.iter().all(|n| !n.documents("ord").is_empty()));
    assert_eq!(
        sortable_round_trip(&mut api, "ord").await,
        sortable_round_trip(&mut one, "ord").await
    );
    // An index whose nodes do not keep the order sortable (set up around the gateway) is
    // still browsed, each node in its own order.
    for node in &nodes {
        let mut direct = Api::new(node.addr, None);
        let route = "/indexes/ord/settings/sortable-attributes";
        direct
            .write("PUT", route, Some("application/json"), b"[]")
            .await;
    }
    let mut listed = browse(&mut api, "ord").await;
    listed.sort();
    let mut all = expected.clone();
    all.sort();
    assert_eq!(listed, all);
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
    assert_eq!(
        sortable_round_trip(&mut api, "ord").await,
        sortable_round_trip(&mut one, "ord").await
    );
}

/// Documents moved to a new node by a rebalance keep their place in the list.
async fn order_survives_a_rebalance(bin: Option<std::path::PathBuf>) {
    let nodes = start_nodes(bin.as_ref()).await;
    let env = [("MIROIR_MASTER_KEY", fleet::KEY)];
    let gw = GatewayProcess::start(&fleet::entries(&nodes, &[1, 2]), &fleet::extra(), &env).await;
    let mut api = Api::new(gw.addr, Some(fleet::KEY));
    let expected = write_batches(&mut api, "ord").await;
    assert_eq!(browse(&mut api, "ord").await, expected, "before");
    fleet::reload_to(&gw, &nodes, &[1, 2, 3]).await;
    let view = fleet::settle(&mut api, &gw, Duration::from_secs(120)).await;
    assert!(
        !view["moves"].as_array().unwrap().is_empty(),
        "no shard moved: {view}"
    );
    assert_eq!(browse(&mut api, "ord").await, expected, "after the move");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insertion_order_survives_a_rebalance_on_test_nodes() {
    order_survives_a_rebalance(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insertion_order_survives_a_rebalance_on_real_meilisearch() {
    let Some(bin) = meili::binary() else {
        meili::skip_notice("insertion_order_survives_a_rebalance_on_real_meilisearch");
        return;
    };
    order_survives_a_rebalance(Some(bin)).await;
}
