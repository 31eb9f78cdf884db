//! The lone path: where every node holds every shard, a search goes to one node as the
//! client sent it, and only the gateway's fields leave its answer. A request that may name a
//! gateway field takes the merge path (its names are renamed first).

use crate::support;

use serde_json::{json, Value};
use support::fake_node::FakeNode;
use support::gateway::{Extra, GatewayProcess, NodeEntry};
use support::meili_api::Api;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_over_one_node_go_as_the_client_sent_them() {
    let node = FakeNode::start("n1", None).await;
    let gw = GatewayProcess::start(
        &NodeEntry::for_fakes(std::slice::from_ref(&node)),
        &Extra::default(),
        &[],
    )
    .await;
    let mut api = Api::new(gw.addr, None);
    let docs = json!([{"id": 1, "title": "red shoe"}, {"id": 2, "title": "red hat"}]);
    let task = api
        .write(
            "POST",
            "/indexes/movies/documents",
            Some("application/json"),
            docs.to_string().as_bytes(),
        )
        .await;
    assert_eq!(task["status"], "succeeded", "{task}");
    let searched = |node: &FakeNode| node.received("/indexes/movies/search");
    let no_tag = |answer: &Value| {
        let hits = answer["hits"].as_array().unwrap();
        !hits.is_empty() && hits.iter().all(|h| h.get("_miroir_shard").is_none())
    };

    // A POST body reaches the node byte for byte, spacing included. The second asks for
    // facets: the index was made through the gateway, so the node keeps more facet values
    // than the client asked for, and they are cut to the client's `maxValuesPerFacet` on the
    // way back (`tests/facets.rs` checks the cut against real Meilisearch).
    let bodies = [
        &br#"{ "q" : "red",  "limit": 5 }"#[..],
        br#"{"q": "red", "facets": ["title"]}"#,
    ];
    for (i, body) in bodies.into_iter().enumerate() {
        let resp = api
            .call(
                "POST",
                "/indexes/movies/search",
                Some("application/json"),
                body,
            )
            .await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert!(no_tag(&resp.json()), "{}", resp.text());
        assert_eq!(searched(&node)[i].body, body);
    }

    // A GET goes as a GET, with the client's query string.
    let resp = api.get("/indexes/movies/search?q=red&limit=5").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(no_tag(&resp.json()), "{}", resp.text());
    let sent = searched(&node);
    assert_eq!(
        (sent[2].method.as_str(), sent[2].query()),
        ("GET", "q=red&limit=5")
    );

    // A gateway field spelled with percent escapes is caught: the merge path renames it
    // before a node sees it, and the client gets a single node's answer (the field is not
    // filterable).
    let resp = api
        .get("/indexes/movies/search?q=red&filter=%5Fmiroir_shard%20%3D%201")
        .await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.json()["code"], "invalid_search_filter");
    assert!(resp.json()["message"]
        .as_str()
        .unwrap()
        .contains("`_miroir_shard`"));
    let sent = searched(&node);
    assert_eq!(sent.len(), 4);
    assert_eq!(sent[3].method, "POST");
    assert!(!String::from_utf8_lossy(&sent[3].body).contains("_miroir_shard"));
}
