//! Endpoints a node answers from its own data, answered through Miroir over three real nodes
//! as one node answers them: similar documents, the index's fields, template rendering.
//! Real Meilisearch only (the test nodes have no vector store); skipped loudly without it.

use crate::support;

use serde_json::{json, Value};
use support::meili::{self, ReferenceAndFleet};
use support::meili_api::Api;

const KEY: &str = "node-features-master-key-0123";

/// Documents with a word title and a 3-dimensional vector, from a small deterministic mix.
fn documents() -> Vec<Value> {
    let words = [
        "red", "blue", "green", "shoe", "lamp", "chair", "table", "phone",
    ];
    let mut x: u64 = 7;
    let mut next = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        x >> 33
    };
    (0..300)
        .map(|i| {
            let title: Vec<&str> = (0..3)
                .map(|_| words[next() as usize % words.len()])
                .collect();
            let v: Vec<f64> = (0..3).map(|_| (next() % 1000) as f64 / 1000.0).collect();
            json!({"id": i, "title": title.join(" "), "price": i % 17, "_vectors": {"default": v}})
        })
        .collect()
}

async fn prepare(api: &mut Api) {
    let steps = [
        (
            "PATCH",
            "/experimental-features",
            json!({"renderRoute": true}),
        ),
        (
            "PATCH",
            "/indexes/items/settings",
            json!({"embedders": {"default": {"source": "userProvided", "dimensions": 3}},
                   "filterableAttributes": ["price"], "sortableAttributes": ["title"]}),
        ),
        ("POST", "/indexes/items/documents", json!(documents())),
    ];
    for (method, path, body) in steps {
        let resp = api.json(method, path, &body).await;
        assert!(resp.status < 300, "{path}: {}", resp.text());
        if let Some(uid) = resp.json()["taskUid"].as_u64() {
            assert_eq!(api.wait(uid).await["status"], "succeeded", "{path}");
        }
    }
}

async fn answer(api: &mut Api, method: &str, path: &str, body: &Option<Value>) -> (u16, Value) {
    let resp = match body {
        Some(b) => api.json(method, path, b).await,
        None => api.get(path).await,
    };
    let mut v: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("processingTimeMs");
        o.remove("performanceDetails");
    }
    (resp.status, v)
}

/// The same request to both; their answers, `processingTimeMs` aside, must be equal.
async fn same(
    a: &mut Api,
    b: &mut Api,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Vec<String> {
    let (ra, rb) = (
        answer(a, method, path, &body).await,
        answer(b, method, path, &body).await,
    );
    if ra == rb {
        Vec::new()
    } else {
        vec![format!(
            "{method} {path} {body:?}:\n node   {ra:?}\n miroir {rb:?}"
        )]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similar_fields_and_render_answer_as_one_node() {
    let Some(bin) = meili::binary() else {
        meili::skip_notice("similar_fields_and_render_answer_as_one_node");
        return;
    };
    let fleet = ReferenceAndFleet::start(&bin, KEY).await;
    let mut a = Api::new(fleet.single.addr, Some(KEY));
    let mut b = Api::new(fleet.gateway.addr, Some(KEY));
    prepare(&mut a).await;
    prepare(&mut b).await;
    let mut failures = Vec::new();
    let similar = "/indexes/items/similar";
    for body in [
        json!({"id": 5, "embedder": "default", "limit": 5, "showRankingScore": true, "attributesToRetrieve": ["title"]}),
        json!({"id": "17", "embedder": "default", "offset": 3, "limit": 4, "showRankingScoreDetails": true}),
        json!({"id": 42, "embedder": "default", "filter": "price > 8", "limit": 7}),
        json!({"id": 42, "embedder": "default", "rankingScoreThreshold": 0.99, "limit": 50}),
        json!({"id": 99999, "embedder": "default"}),
        json!({"id": 5, "embedder": "nope"}),
        json!({"id": 5}),
        json!({"id": 5, "embedder": "default", "filter": "title = x"}),
    ] {
        failures.extend(same(&mut a, &mut b, "POST", similar, Some(body)).await);
    }
    let get = "/indexes/items/similar?id=8&embedder=default&limit=3&attributesToRetrieve=id,price";
    failures.extend(same(&mut a, &mut b, "GET", get, None).await);

    let fields = "/indexes/items/fields";
    for body in [
        json!({}),
        json!({"offset": 1, "limit": 2}),
        json!({"filter": {"filterable": true}}),
        json!({"filter": {"sortable": true, "displayed": true}}),
        json!({"filter": {"attributePatterns": ["p*"]}}),
        json!({"limit": "x"}),
        json!({"filter": {"nope": 1}}),
    ] {
        failures.extend(same(&mut a, &mut b, "POST", fields, Some(body)).await);
    }
    failures.extend(
        same(
            &mut a,
            &mut b,
            "POST",
            "/indexes/missing/fields",
            Some(json!({})),
        )
        .await,
    );

    for body in [
        json!({"template": {"kind": "inlineDocumentTemplate", "inline": "{{ doc.title }} at {{ doc.price }}"},
               "input": {"kind": "indexDocument", "indexUid": "items", "id": "123"}}),
        json!({"template": {"kind": "inlineDocumentTemplate", "inline": "{{ doc.name }}"},
               "input": {"kind": "inlineDocument", "inline": {"name": "x"}}}),
        json!({"template": {"kind": "inlineDocumentTemplate", "inline": "{{ doc.title }}"},
               "input": {"kind": "indexDocument", "indexUid": "items", "id": "99999"}}),
        json!({}),
    ] {
        failures.extend(same(&mut a, &mut b, "POST", "/render-template", Some(body)).await);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The documents of a write still in progress, every one once and without the tag; none once
/// it is done; a node's errors otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_documents_are_the_writes_payload() {
    let Some(bin) = meili::binary() else {
        meili::skip_notice("task_documents_are_the_writes_payload");
        return;
    };
    let fleet = ReferenceAndFleet::start(&bin, KEY).await;
    let mut a = Api::new(fleet.single.addr, Some(KEY));
    let mut b = Api::new(fleet.gateway.addr, Some(KEY));
    let mut failures = Vec::new();
    failures.extend(same(&mut a, &mut b, "GET", "/tasks/0/documents", None).await);
    for api in [&mut a, &mut b] {
        let on = json!({"getTaskDocumentsRoute": true});
        assert_eq!(
            api.json("PATCH", "/experimental-features", &on)
                .await
                .status,
            200
        );
    }
    let docs: Vec<Value> = (0..20_000)
        .map(|i| json!({"id": i, "n": i as f64 / 10.0}))
        .collect();
    let resp = b
        .json("POST", "/indexes/payload/documents", &json!(docs))
        .await;
    let uid = resp.json()["taskUid"].as_u64().unwrap();
    let read = b.get(&format!("/tasks/{uid}/documents")).await;
    let status = b.get(&format!("/tasks/{uid}")).await.json()["status"].clone();
    if read.status == 200 {
        let text = String::from_utf8(read.body.clone()).unwrap();
        assert!(!text.contains("_miroir"), "the tag is shown");
        let mut ids: Vec<u64> = serde_json::Deserializer::from_str(&text)
            .into_iter::<Value>()
            .map(|d| d.unwrap()["id"].as_u64().unwrap())
            .collect();
        ids.sort();
        assert_eq!(ids, (0..20_000).collect::<Vec<u64>>());
    } else {
        // Too late: the nodes processed it already.
        assert_eq!(read.json()["code"], "task_file_not_found", "{status}");
    }
    assert_eq!(b.wait(uid).await["status"], "succeeded");
    let done = b.get(&format!("/tasks/{uid}/documents")).await;
    assert_eq!(
        (done.status, done.json()["code"].clone()),
        (404, json!("task_file_not_found"))
    );
    for path in ["/tasks/abc/documents", "/tasks/999999/documents"] {
        failures.extend(same(&mut a, &mut b, "GET", path, None).await);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
