//! Index aliases and swaps through Miroir over test nodes: the admin API and its errors,
//! every route resolving an alias, writes landing on the real index, and readers that never
//! see a mixed answer while an alias flips or indexes swap. The same against real
//! Meilisearch is in `real_aliases.rs`.

use crate::support;

use std::time::Duration;

use serde_json::{json, Value};
use support::fake_node::FakeNode;
use support::gateway::{Extra, GatewayProcess, NodeEntry};
use support::meili_api::Api;
use support::readers::{docs, swap_times, versions, Readers};

const KEY: &str = "aliases-master-key-0123456789";

async fn fleet() -> (Vec<FakeNode>, GatewayProcess) {
    let nodes = FakeNode::three(Some(KEY)).await;
    let entries = NodeEntry::for_fakes(&nodes);
    let gw =
        GatewayProcess::start(&entries, &Extra::default(), &[("MIROIR_MASTER_KEY", KEY)]).await;
    (nodes, gw)
}

async fn search(api: &mut Api, index: &str) -> Value {
    let resp = api
        .json(
            "POST",
            &format!("/indexes/{index}/search"),
            &json!({"limit": 100}),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_routes_every_request_to_its_target() {
    let (_nodes, mut gw) = fleet().await;
    let mut api = Api::new(gw.addr, Some(KEY));
    for (index, v) in [("products_v1", "v1"), ("products_v2", "v2")] {
        let path = format!("/indexes/{index}/documents");
        let body = docs(v, 0, 20).to_string();
        let task = api
            .write("POST", &path, Some("application/json"), body.as_bytes())
            .await;
        assert_eq!(task["status"], "succeeded", "{task}");
    }

    // The admin API takes the master key only, and refuses what cannot be an alias.
    let mut anonymous = Api::new(gw.addr, None);
    let resp = anonymous.json("POST", "/_miroir/aliases", &json!({})).await;
    assert_eq!(resp.status, 401, "{}", resp.text());
    let cases = [
        (
            json!({"name": "products_v1", "targets": ["products_v2"]}),
            409,
            "miroir_alias_shadows_index",
        ),
        (
            json!({"name": "products", "targets": ["nope"]}),
            404,
            "index_not_found",
        ),
        (
            json!({"name": "bad name", "targets": ["products_v1"]}),
            400,
            "miroir_invalid_alias",
        ),
        (json!({"name": "products"}), 400, "miroir_invalid_alias"),
    ];
    for (body, status, code) in cases {
        let resp = api.json("POST", "/_miroir/aliases", &body).await;
        assert_eq!(resp.status, status, "{body}: {}", resp.text());
        assert_eq!(resp.json()["code"], code, "{body}");
    }
    let created = api
        .json(
            "POST",
            "/_miroir/aliases",
            &json!({"name": "products", "targets": ["products_v1"]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.json()["targets"], json!(["products_v1"]));
    assert_eq!(created.json()["writeIndex"], "products_v1");
    let again = api
        .json(
            "POST",
            "/_miroir/aliases",
            &json!({"name": "products", "target": "products_v2"}),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.text());

    // No index may take the alias's name; the alias is not an index to delete.
    let resp = api
        .json("POST", "/indexes", &json!({"uid": "products"}))
        .await;
    assert_eq!(
        (resp.status, resp.json()["code"].clone()),
        (409, json!("miroir_index_is_alias"))
    );
    let resp = api.call("DELETE", "/indexes/products", None, b"").await;
    assert_eq!(resp.status, 409, "{}", resp.text());

    // Reads: search (POST and GET), documents, settings, the index itself, multi-search.
    assert_eq!(versions(&search(&mut api, "products").await), ["v1"]);
    let get = api.get("/indexes/products/search?q=shoe&limit=5").await;
    assert_eq!(versions(&get.json()), ["v1"]);
    let doc = api.get("/indexes/products/documents/3").await;
    assert_eq!(
        (doc.status, doc.json()["v"].clone()),
        (200, json!("v1")),
        "{}",
        doc.text()
    );
    assert_eq!(api.get("/indexes/products/settings").await.status, 200);
    let index = api.get("/indexes/products").await;
    assert_eq!(index.json()["uid"], "products_v1", "{}", index.text());
    let multi = api
        .json(
            "POST",
            "/multi-search",
            &json!({"queries": [{"indexUid": "products_v2"}, {"indexUid": "products", "limit": 50}]}),
        )
        .await;
    assert_eq!(multi.status, 200, "{}", multi.text());
    let results = multi.json()["results"].clone();
    assert_eq!(results[0]["indexUid"], "products_v2");
    assert_eq!(
        results[1]["indexUid"], "products",
        "the alias is echoed: {results}"
    );
    assert_eq!(versions(&results[1]), ["v1"]);

    // A write through the alias lands on its target; the task names the real index.
    let task = api
        .write(
            "POST",
            "/indexes/products/documents",
            Some("application/json"),
            docs("v1", 100, 1).to_string().as_bytes(),
        )
        .await;
    assert_eq!(
        (task["status"].clone(), task["indexUid"].clone()),
        (json!("succeeded"), json!("products_v1"))
    );
    assert_eq!(
        api.get("/indexes/products_v1/documents/100").await.status,
        200
    );

    // A flip: searches use the new target at once; the history says what changed.
    let flipped = api
        .json(
            "PATCH",
            "/_miroir/aliases/products",
            &json!({"targets": ["products_v2"]}),
        )
        .await;
    assert_eq!(flipped.status, 200, "{}", flipped.text());
    let history = flipped.json()["history"].clone();
    assert_eq!(history[0]["from"], json!(["products_v1"]));
    assert_eq!(history[0]["to"], json!(["products_v2"]));
    assert_eq!(versions(&search(&mut api, "products").await), ["v2"]);

    // Several targets: a write is ambiguous without a write index.
    let both = api
        .json(
            "POST",
            "/_miroir/aliases",
            &json!({"name": "both", "targets": ["products_v1", "products_v2"]}),
        )
        .await;
    assert_eq!(both.status, 201, "{}", both.text());
    let resp = api
        .json("POST", "/indexes/both/documents", &json!([{"id": 1}]))
        .await;
    assert_eq!(
        (resp.status, resp.json()["code"].clone()),
        (409, json!("miroir_alias_ambiguous"))
    );
    let with_write = api
        .json(
            "PATCH",
            "/_miroir/aliases/both",
            &json!({"targets": ["products_v1", "products_v2"], "writeIndex": "products_v2"}),
        )
        .await;
    assert_eq!(with_write.status, 200, "{}", with_write.text());
    let task = api
        .write(
            "POST",
            "/indexes/both/documents",
            Some("application/json"),
            docs("v2", 200, 1).to_string().as_bytes(),
        )
        .await;
    assert_eq!(task["indexUid"], "products_v2", "{task}");

    // Aliases are kept across a restart (a crash).
    gw.restart().await;
    let mut api = Api::new(gw.addr, Some(KEY));
    let listed = api.get("/_miroir/aliases").await.json();
    assert_eq!(listed["total"], 2, "{listed}");
    assert_eq!(versions(&search(&mut api, "products").await), ["v2"]);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("miroir_alias_resolutions_total{alias=\"products\"}"),
        "{metrics}"
    );

    // Deleted: the name is free, and searching it is searching an index that does not exist.
    assert_eq!(
        api.call("DELETE", "/_miroir/aliases/products", None, b"")
            .await
            .status,
        204
    );
    assert_eq!(api.get("/_miroir/aliases/products").await.status, 404);
    let resp = api
        .json("POST", "/indexes/products/search", &json!({}))
        .await;
    assert_eq!(
        (resp.status, resp.json()["code"].clone()),
        (404, json!("index_not_found"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_see_a_mixed_answer_while_aliases_flip_or_indexes_swap() {
    let (_nodes, gw) = fleet().await;
    let mut api = Api::new(gw.addr, Some(KEY));
    for (index, v) in [("blue", "v1"), ("green", "v2")] {
        let body = docs(v, 0, 60).to_string();
        let path = format!("/indexes/{index}/documents");
        api.write("POST", &path, Some("application/json"), body.as_bytes())
            .await;
    }
    let resp = api
        .json(
            "POST",
            "/_miroir/aliases",
            &json!({"name": "shop", "targets": ["blue"]}),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());

    let readers = Readers::start(gw.addr, Some(KEY), "shop", 3);
    for i in 0..10 {
        let target = if i % 2 == 0 { "green" } else { "blue" };
        let resp = api
            .json(
                "PATCH",
                "/_miroir/aliases/shop",
                &json!({"targets": [target]}),
            )
            .await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let counts = readers.finish().await;
    assert!(counts.answers > 20, "{counts:?}");
    assert_eq!((counts.failed, counts.mixed), (0, 0), "{counts:?}");
    assert_eq!(counts.seen.len(), 2, "both versions were read: {counts:?}");

    // Swapping the indexes themselves, read by their own uid.
    let readers = Readers::start(gw.addr, Some(KEY), "blue", 3);
    swap_times(&mut api, ("blue", "green"), 6, Duration::from_millis(30)).await;
    let counts = readers.finish().await;
    assert_eq!((counts.failed, counts.mixed), (0, 0), "{counts:?}");
    assert_eq!(counts.seen.len(), 2, "both versions were read: {counts:?}");
}
