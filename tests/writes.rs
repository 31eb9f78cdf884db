//! The write path through the gateway binary, against Meilisearch-compatible test nodes:
//! batches land on their shard's owners only, tagged; tasks aggregate; errors match.

use crate::support;

use std::collections::BTreeMap;

use miroir::config::{ClusterSpec, NodeSpec};
use miroir::routing::shard_of;
use miroir::topology::Topology;
use serde_json::{json, Value};
use support::fake_node::FakeNode;
use support::gateway::{Extra, GatewayProcess, NodeEntry};
use support::meili_api::Api;

/// The topology the gateway builds for these nodes (16 shards, one group, rf 1).
fn topology(nodes: &[FakeNode]) -> Topology {
    let specs: Vec<NodeSpec> = nodes
        .iter()
        .map(|n| NodeSpec {
            id: n.name.clone(),
            url: n.url(),
            authority: n.addr.to_string(),
            addr: n.addr,
            group: "a".into(),
            weight: 1,
        })
        .collect();
    Topology::new(
        &ClusterSpec {
            shards: 16,
            replication_factor: 1,
        },
        &specs,
        1,
    )
}

fn id_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Every document sits on exactly its owner, tagged with its shard.
fn check_placement(
    nodes: &[FakeNode],
    topo: &Topology,
    index: &str,
    expected: usize,
) -> BTreeMap<String, Value> {
    let mut all = BTreeMap::new();
    for (i, node) in nodes.iter().enumerate() {
        for (id, doc) in node.documents(index) {
            let shard = shard_of(id.as_bytes(), topo.shards);
            assert_eq!(
                topo.owners(shard),
                [i],
                "document {id} is on {} but belongs elsewhere",
                node.name
            );
            assert_eq!(
                doc["_miroir_shard"],
                miroir::shard_tag::value(shard),
                "document {id}"
            );
            assert!(
                all.insert(id.clone(), doc).is_none(),
                "document {id} is stored twice"
            );
        }
    }
    assert_eq!(all.len(), expected);
    all
}

async fn start() -> (Vec<FakeNode>, GatewayProcess, Api) {
    let nodes = FakeNode::three(None).await;
    let entries = NodeEntry::for_fakes(&nodes);
    let gw = GatewayProcess::start(&entries, &Extra::default(), &[]).await;
    let api = Api::new(gw.addr, None);
    (nodes, gw, api)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_land_on_their_owners_in_every_format() {
    let (nodes, gw, mut api) = start().await;
    let topo = topology(&nodes);

    let created = api
        .call(
            "POST",
            "/indexes",
            Some("application/json"),
            br#"{"uid":"people","primaryKey":"id"}"#,
        )
        .await;
    assert_eq!(created.status, 202);
    assert_eq!(created.json()["taskUid"], 0);
    assert_eq!(api.wait(0).await["status"], "succeeded");

    let data = support::data::people();
    let docs: Vec<Value> = serde_json::from_slice(&data).unwrap();
    let task = api
        .write(
            "POST",
            "/indexes/people/documents",
            Some("application/json"),
            &data,
        )
        .await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(task["type"], "documentAdditionOrUpdate");
    assert_eq!(
        task["details"],
        json!({"receivedDocuments": docs.len(), "indexedDocuments": docs.len()})
    );
    let stored = check_placement(&nodes, &topo, "people", docs.len());
    // Byte-for-byte the client's document, plus the gateway's fields.
    for d in &docs {
        let mut s = stored[&id_of(&d["id"])].clone();
        s.as_object_mut().unwrap().shift_remove("_miroir_shard");
        s.as_object_mut().unwrap().shift_remove("_miroir_order");
        assert_eq!(&s, d);
    }
    // Every node received exactly one request for the batch.
    for n in &nodes {
        let adds: Vec<_> = n
            .received("/indexes/people/documents")
            .into_iter()
            .filter(|m| !m.body.is_empty())
            .collect();
        assert_eq!(adds.len(), 1, "{}", n.name);
        assert!(adds[0].query().contains("primaryKey=id"));
    }

    let ndjson = b"{\"id\": 1000, \"name\": \"N one\"}\n{\"id\": \"n-2\", \"name\": \"N two\"}\n";
    let t = api
        .write(
            "PUT",
            "/indexes/people/documents",
            Some("application/x-ndjson"),
            ndjson,
        )
        .await;
    assert_eq!(t["status"], "succeeded");
    let csv = b"id;name;age:number\n2000;Csv One;33\n2001;\"Csv; Two\";44\n";
    let t = api
        .write(
            "POST",
            "/indexes/people/documents?csvDelimiter=%3B",
            Some("text/csv"),
            csv,
        )
        .await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let stored = check_placement(&nodes, &topo, "people", docs.len() + 4);
    assert_eq!(stored["2001"]["name"], "Csv; Two");
    assert_eq!(stored["2001"]["age"], 44);

    // Reads hide the tag.
    let doc = api.get("/indexes/people/documents/2001").await.json();
    assert_eq!(doc, json!({"id": "2001", "name": "Csv; Two", "age": 44}));
    let stats = api.get("/indexes/people/stats").await.json();
    assert_eq!(stats["numberOfDocuments"], docs.len() + 4);
    assert!(stats["fieldDistribution"].get("_miroir_shard").is_none());
    assert_eq!(stats["fieldDistribution"]["name"], docs.len() + 4);
    assert_eq!(
        api.get("/indexes/people/settings/filterable-attributes")
            .await
            .json(),
        json!([])
    );
    for n in &nodes {
        assert_eq!(
            n.state.lock().unwrap().indexes["people"].filterable,
            json!(["_miroir_shard"])
        );
    }
    drop(gw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_reach_the_owners() {
    let (nodes, _gw, mut api) = start().await;
    let topo = topology(&nodes);
    let docs: Vec<Value> = (0..40).map(|i| json!({"id": i, "v": i})).collect();
    let t = api
        .write(
            "POST",
            "/indexes/d/documents",
            Some("application/json"),
            Value::from(docs).to_string().as_bytes(),
        )
        .await;
    assert_eq!(t["status"], "succeeded");
    // Created implicitly: the tag is filterable there too, and the key was inferred.
    assert_eq!(
        nodes[0].state.lock().unwrap().indexes["d"].filterable,
        json!(["_miroir_shard"])
    );
    assert_eq!(
        nodes[0].state.lock().unwrap().indexes["d"]
            .primary_key
            .as_deref(),
        Some("id")
    );

    let t = api
        .write("DELETE", "/indexes/d/documents/7", None, b"")
        .await;
    assert_eq!(
        t["details"],
        json!({"providedIds": 1, "deletedDocuments": 1})
    );
    let owner = topo.owners(shard_of(b"7", 16))[0];
    let total: usize = nodes
        .iter()
        .map(|n| n.received("/indexes/d/documents/7").len())
        .sum();
    assert_eq!(
        (nodes[owner].received("/indexes/d/documents/7").len(), total),
        (1, 1),
        "only the owner is asked"
    );

    let t = api
        .write(
            "POST",
            "/indexes/d/documents/delete-batch",
            Some("application/json"),
            b"[1, \"2\", 3, 999]",
        )
        .await;
    assert_eq!(
        t["details"],
        json!({"providedIds": 4, "deletedDocuments": 3})
    );
    check_placement(&nodes, &topo, "d", 36);

    let t = api.write("DELETE", "/indexes/d/documents", None, b"").await;
    assert_eq!(t["details"]["deletedDocuments"], 36);
    check_placement(&nodes, &topo, "d", 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_payloads_and_documents_fail_like_meilisearch() {
    let (nodes, _gw, mut api) = start().await;
    // Refused at once.
    let r = api.call("POST", "/indexes/e/documents", None, b"[]").await;
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (415, "missing_content_type".into())
    );
    let r = api
        .call(
            "POST",
            "/indexes/e/documents",
            Some("application/json"),
            br#"[{"id": 1}, {id: 2}]"#,
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "The `json` payload provided is malformed. `Couldn't serialize document value: key must be a string at line 1 column 14`."
    );
    let r = api
        .call(
            "POST",
            "/indexes/e/documents",
            Some("application/json"),
            b"",
        )
        .await;
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (400, "missing_payload".into())
    );

    // Accepted, then failed, as a single node does; nothing reaches the nodes' data.
    let t = api
        .write(
            "POST",
            "/indexes/e/documents?primaryKey=id",
            Some("application/json"),
            br#"[{"id": 1}, {"name": "no id"}]"#,
        )
        .await;
    assert_eq!(t["status"], "failed");
    assert_eq!(t["error"]["code"], "missing_document_id");
    assert_eq!(
        t["error"]["message"],
        r#"Document doesn't have a `id` attribute: `{"name":"no id"}`."#
    );
    assert_eq!(
        t["details"],
        json!({"receivedDocuments": 2, "indexedDocuments": 0})
    );
    let t = api
        .write(
            "POST",
            "/indexes/e/documents?primaryKey=id",
            Some("application/json"),
            br#"[{"id": "a b"}]"#,
        )
        .await;
    assert_eq!(t["error"]["code"], "invalid_document_id");
    let t = api
        .write(
            "POST",
            "/indexes/e/documents?primaryKey=id",
            Some("application/json"),
            br#"[{"id": 5, "_miroir_shard": "x"}]"#,
        )
        .await;
    assert_eq!(t["error"]["code"], "miroir_reserved_field");
    let t = api
        .write(
            "POST",
            "/indexes/e/documents",
            Some("application/json"),
            br#"[{"uid": 1, "id": 2}]"#,
        )
        .await;
    assert_eq!(
        t["error"]["code"],
        "index_primary_key_multiple_candidates_found"
    );
    assert!(nodes.iter().all(|n| n.documents("e").is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_list_filter_page_and_survive_a_restart() {
    let (_nodes, mut gw, mut api) = start().await;
    for i in 0..5 {
        let body = json!([{"id": i}]).to_string();
        api.write(
            "POST",
            &format!("/indexes/t{}/documents", i % 2),
            Some("application/json"),
            body.as_bytes(),
        )
        .await;
    }
    api.write(
        "POST",
        "/indexes/t0/documents?primaryKey=id",
        Some("application/json"),
        br#"[{"x": 1}]"#,
    )
    .await;

    let all = api.get("/tasks").await.json();
    assert_eq!(all["total"], 6);
    let uids: Vec<u64> = all["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["uid"].as_u64().unwrap())
        .collect();
    assert_eq!(uids, [5, 4, 3, 2, 1, 0]);
    assert_eq!(
        (all["from"].clone(), all["next"].clone()),
        (json!(5), Value::Null)
    );

    let page = api.get("/tasks?limit=2").await.json();
    assert_eq!(
        (
            page["from"].clone(),
            page["next"].clone(),
            page["limit"].clone()
        ),
        (json!(5), json!(3), json!(2))
    );
    let page = api.get("/tasks?limit=2&from=3").await.json();
    assert_eq!(page["results"][0]["uid"], 3);
    let failed = api.get("/tasks?statuses=failed").await.json();
    assert_eq!(failed["total"], 1);
    assert_eq!(failed["results"][0]["uid"], 5);
    let t1 = api
        .get("/tasks?indexUids=t1&types=documentAdditionOrUpdate")
        .await
        .json();
    assert_eq!(t1["total"], 2);
    let rev = api.get("/tasks?reverse=true&limit=1").await.json();
    assert_eq!(rev["results"][0]["uid"], 0);

    let before = api.get("/tasks/3").await.json();
    gw.restart().await;
    let mut api = Api::new(gw.addr, None);
    assert_eq!(
        api.get("/tasks/3").await.json(),
        before,
        "the task survives the restart"
    );
    let next = api
        .call(
            "POST",
            "/indexes/t9/documents",
            Some("application/json"),
            br#"[{"id": 1}]"#,
        )
        .await;
    assert_eq!(next.json()["taskUid"], 6, "uids go on after a restart");

    // Deleting finished tasks.
    let del = api.call("DELETE", "/tasks?indexUids=t0", None, b"").await;
    assert_eq!(del.status, 200);
    let del_task = api.wait(del.json()["taskUid"].as_u64().unwrap()).await;
    assert_eq!(del_task["type"], "taskDeletion");
    assert_eq!(del_task["details"]["deletedTasks"], 4);
    assert_eq!(api.get("/tasks?indexUids=t0").await.json()["total"], 0);
    let missing = api.call("DELETE", "/tasks", None, b"").await;
    assert_eq!(
        (missing.status, missing.json()["code"].clone()),
        (400, "missing_task_filters".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_key_other_than_the_index_s_fails_the_task_and_writes_nothing() {
    let (nodes, _gw, mut api) = start().await;
    let first = api
        .write(
            "POST",
            "/indexes/pk/documents",
            Some("application/json"),
            br#"[{"id": 1, "title": "a", "year": 2000}]"#,
        )
        .await;
    assert_eq!(first["status"], "succeeded", "{first}");
    for (method, ct, body) in [
        (
            "POST",
            "application/json",
            &br#"[{"id": 1, "title": "b"}]"#[..],
        ),
        (
            "PUT",
            "application/x-ndjson",
            &b"{\"id\": 1, \"title\": \"c\"}\n"[..],
        ),
        ("POST", "text/csv", &b"id,title\n1,d\n"[..]),
    ] {
        let t = api
            .write(
                method,
                "/indexes/pk/documents?primaryKey=title",
                Some(ct),
                body,
            )
            .await;
        assert_eq!(t["status"], "failed", "{t}");
        assert_eq!(t["error"]["code"], "index_primary_key_already_exists");
        assert_eq!(
            t["error"]["message"],
            "Index already has a primary key: `id`."
        );
        assert_eq!(t["details"]["indexedDocuments"], 0);
    }
    // The same key as the index's is fine.
    let same = api
        .write(
            "POST",
            "/indexes/pk/documents?primaryKey=id",
            Some("application/json"),
            br#"[{"id": 2, "title": "e"}]"#,
        )
        .await;
    assert_eq!(same["status"], "succeeded", "{same}");
    let docs: BTreeMap<String, Value> = nodes.iter().flat_map(|n| n.documents("pk")).collect();
    assert_eq!(docs["1"]["title"], "a", "document 1 untouched");
    assert_eq!(docs["1"]["year"], 2000);
    assert_eq!(docs.len(), 2);
}

/// Creating an index that exists fails, as on a node, and changes nothing: its filterable
/// attributes stay the client's (with the tag on the nodes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_an_existing_index_keeps_its_settings() {
    let (nodes, _gw, mut api) = start().await;
    let resp = api.json("POST", "/indexes", &json!({"uid": "fa"})).await;
    assert_eq!(
        api.wait(resp.json()["taskUid"].as_u64().unwrap()).await["status"],
        "succeeded"
    );
    let path = "/indexes/fa/settings/filterable-attributes";
    let resp = api.json("PUT", path, &json!(["genre"])).await;
    assert_eq!(
        api.wait(resp.json()["taskUid"].as_u64().unwrap()).await["status"],
        "succeeded"
    );
    let again = api.json("POST", "/indexes", &json!({"uid": "fa"})).await;
    let task = api.wait(again.json()["taskUid"].as_u64().unwrap()).await;
    assert_eq!(task["status"], "failed", "{task}");
    assert_eq!(task["error"]["code"], "index_already_exists", "{task}");
    assert_eq!(api.get(path).await.json(), json!(["genre"]));
    for node in &nodes {
        let direct = Api::new(node.addr, None).get(path).await.json();
        assert_eq!(direct, json!(["genre", "_miroir_shard"]), "{}", node.name);
    }
}

/// A settings write that creates its index is one task per node, as on a node: the client's
/// settings with the tag and the nodes' deeper facet values; the task shows the client's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_write_into_a_new_index_is_one_task_per_node() {
    let (nodes, _gw, mut api) = start().await;
    let body = json!({"sortableAttributes": ["year"]});
    let resp = api.json("PATCH", "/indexes/fresh/settings", &body).await;
    let task = api.wait(resp.json()["taskUid"].as_u64().unwrap()).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(task["details"], body, "{task}");
    let settings = api.get("/indexes/fresh/settings").await.json();
    assert_eq!(settings["filterableAttributes"], json!([]));
    assert_eq!(settings["faceting"]["maxValuesPerFacet"], 100);
    for node in &nodes {
        let writes: Vec<String> = node
            .received("/indexes/fresh/settings")
            .iter()
            .filter(|m| m.method != "GET")
            .map(|m| format!("{} {}", m.method, m.path()))
            .collect();
        assert_eq!(writes, ["PATCH /indexes/fresh/settings"], "{}", node.name);
        for follow_up in ["filterable-attributes", "faceting"] {
            let path = format!("/indexes/fresh/settings/{follow_up}");
            assert!(node.received(&path).is_empty(), "{}: {path}", node.name);
        }
        let direct = Api::new(node.addr, None)
            .get("/indexes/fresh/settings")
            .await
            .json();
        assert_eq!(
            direct["filterableAttributes"],
            json!(["_miroir_shard"]),
            "{}",
            node.name
        );
        assert_eq!(
            direct["faceting"]["maxValuesPerFacet"], 400,
            "{}",
            node.name
        );
    }
}

/// Resetting every setting is one task per node, as on a node: every setting reset but the
/// tag and the nodes' deeper facet values; the task and the settings read back show a plain
/// reset. On a missing index it fails as a node's does, and creates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_of_every_setting_is_one_task_per_node() {
    let (nodes, _gw, mut api) = start().await;
    let body = json!({
        "filterableAttributes": ["genre"],
        "sortableAttributes": ["year"],
        "faceting": {"maxValuesPerFacet": 7, "sortFacetValuesBy": {"genre": "count"}},
        "synonyms": {"film": ["movie"]},
    });
    let resp = api.json("PATCH", "/indexes/reset/settings", &body).await;
    let task = api.wait(resp.json()["taskUid"].as_u64().unwrap()).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    let before: Vec<usize> = nodes
        .iter()
        .map(|n| n.received("/indexes/reset/settings").len())
        .collect();

    let resp = api
        .call("DELETE", "/indexes/reset/settings", None, b"")
        .await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    let task = api.wait(resp.json()["taskUid"].as_u64().unwrap()).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(task["type"], "settingsUpdate");
    let details = task["details"].as_object().unwrap();
    assert_eq!(details["filterableAttributes"], Value::Null, "{task}");
    assert_eq!(details["faceting"], Value::Null, "{task}");
    assert_eq!(details["displayedAttributes"], json!(["*"]), "{task}");
    assert_eq!(
        details.len(),
        22,
        "every setting, as a node's reset shows: {task}"
    );

    let settings = api.get("/indexes/reset/settings").await.json();
    assert_eq!(settings["filterableAttributes"], json!([]));
    assert_eq!(settings["sortableAttributes"], json!([]));
    assert_eq!(settings["synonyms"], json!({}));
    assert_eq!(settings["faceting"]["maxValuesPerFacet"], 100);
    assert_eq!(
        settings["faceting"]["sortFacetValuesBy"],
        json!({"*": "alpha"})
    );
    for (node, before) in nodes.iter().zip(before) {
        let writes: Vec<String> = node.received("/indexes/reset/settings")[before..]
            .iter()
            .filter(|m| m.method != "GET")
            .map(|m| m.method.clone())
            .collect();
        assert_eq!(writes, ["PATCH"], "{}: one task", node.name);
        for follow_up in ["filterable-attributes", "faceting"] {
            let path = format!("/indexes/reset/settings/{follow_up}");
            assert!(node.received(&path).is_empty(), "{}: {path}", node.name);
        }
        let direct = Api::new(node.addr, None)
            .get("/indexes/reset/settings")
            .await
            .json();
        assert_eq!(direct["filterableAttributes"], json!(["_miroir_shard"]));
        assert_eq!(direct["faceting"]["maxValuesPerFacet"], 400);
        assert_eq!(direct["synonyms"], json!({}));
    }

    let resp = api
        .call("DELETE", "/indexes/nowhere/settings", None, b"")
        .await;
    let task = api.wait(resp.json()["taskUid"].as_u64().unwrap()).await;
    assert_eq!(task["status"], "failed", "{task}");
    assert_eq!(task["error"]["code"], "index_not_found", "{task}");
    assert_eq!(api.get("/indexes/nowhere").await.status, 404);
}
