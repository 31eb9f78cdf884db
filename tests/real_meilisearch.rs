//! End to end against real Meilisearch nodes, when a `meilisearch` binary is available
//! (`MEILI_BIN` or `PATH`); otherwise each test prints a loud SKIPPED line and passes.

use crate::support;

use support::gateway::{Extra, GatewayProcess, NodeEntry};
use support::http::Client;
use support::meili::{self, MeiliNode, ReferenceAndFleet};

const KEY: &str = "miroir-e2e-master-key-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_version_and_one_node_routes_through_real_nodes() {
    let Some(bin) = meili::binary() else {
        meili::skip_notice("health_version_and_one_node_routes_through_real_nodes");
        return;
    };
    let (nodes, entries) = meili::real_nodes(&bin, KEY, 3).await;
    let gw =
        GatewayProcess::start(&entries, &Extra::default(), &[("MIROIR_MASTER_KEY", KEY)]).await;
    let bearer = format!("Bearer {KEY}");
    let auth = [("authorization", bearer.as_str())];
    let mut through = Client::new(gw.addr);
    let mut direct = Client::new(nodes[0].addr);

    let health = through.get("/health").await.unwrap();
    assert_eq!(
        (health.status, health.json()),
        (200, serde_json::json!({"status": "available"}))
    );

    // The nodes' keys are aligned at the gateway's start: one set, the same uids everywhere
    // (each node starts with four default keys of its own).
    let key_uids = |addr| async move {
        let mut c = Client::new(addr);
        let auth = [("authorization", format!("Bearer {KEY}"))];
        let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = c.send("GET", "/keys", &auth, b"").await.unwrap();
        let mut uids: Vec<String> = r.json()["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k["uid"].as_str().map(str::to_string))
            .collect();
        uids.sort();
        uids
    };
    let aligned = support::gateway::eventually(std::time::Duration::from_secs(20), async || {
        let mut sets = Vec::new();
        for n in &nodes {
            sets.push(key_uids(n.addr).await);
        }
        sets[0].len() == 4 && sets.iter().all(|s| *s == sets[0])
    })
    .await;
    assert!(aligned, "keys not aligned: {}", gw.log());

    // One-node routes answer exactly as a node does, including its auth errors.
    for (path, headers) in [
        ("/version", &auth[..]),
        ("/indexes", &auth[..]),
        ("/indexes/missing", &auth[..]),
        ("/indexes/missing/settings", &auth[..]),
        ("/keys", &auth[..]),
        ("/version", &[][..]),
        ("/version", &[("authorization", "Bearer nope")][..]),
    ] {
        let a = through.send("GET", path, headers, b"").await.unwrap();
        let b = direct.send("GET", path, headers, b"").await.unwrap();
        assert_eq!(a.status, b.status, "{path}");
        let (mut ja, mut jb) = (a.json(), b.json());
        // The gateway makes the nodes' keys one set (see the README): the same keys, uids
        // and key strings; a copied key's `createdAt` is the copy's, so the order of the
        // list (newest first) may differ.
        if path == "/keys" {
            for j in [&mut ja, &mut jb] {
                let list = j["results"].as_array_mut().unwrap();
                for k in list.iter_mut() {
                    k.as_object_mut().unwrap().retain(|f, _| {
                        ["name", "actions", "indexes", "uid", "key"].contains(&f.as_str())
                    });
                }
                list.sort_by_key(|k| k["uid"].as_str().unwrap_or_default().to_string());
            }
        }
        assert_eq!(ja, jb, "{path}");
    }

    // Gateway-owned routes check the key with a node first.
    let denied = through
        .send("GET", "/tasks", &[("authorization", "Bearer nope")], b"")
        .await
        .unwrap();
    assert_eq!(denied.status, 403);
    assert_eq!(denied.json()["code"], "invalid_api_key");

    // `/metrics`: refused as a node refuses it until the feature is on, then every node's
    // metrics, each sample naming its node, each family declared once.
    let off = through.send("GET", "/metrics", &auth, b"").await.unwrap();
    let alone = direct.send("GET", "/metrics", &auth, b"").await.unwrap();
    assert_eq!((off.status, off.json()), (alone.status, alone.json()));
    let mut headers = auth.to_vec();
    headers.push(("content-type", "application/json"));
    let on = through
        .send(
            "PATCH",
            "/experimental-features",
            &headers,
            br#"{"metrics":true}"#,
        )
        .await
        .unwrap();
    assert_eq!(on.status, 200, "{}", on.text());
    let metrics = through.send("GET", "/metrics", &auth, b"").await.unwrap();
    assert_eq!(metrics.status, 200, "{}", metrics.text());
    assert_eq!(
        metrics.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    let text = metrics.text();
    assert_eq!(
        text.matches("# TYPE meilisearch_db_size_bytes gauge")
            .count(),
        1
    );
    for node in ["m0", "m1", "m2"] {
        let sample = format!("meilisearch_db_size_bytes{{node=\"{node}\"}} ");
        assert!(text.contains(&sample), "{sample} missing:\n{text}");
    }
    assert!(text.contains("miroir_requests_total"), "{text}");
}

/// What may differ between two runs of one script: times and batch numbers.
fn comparable(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(o) = v.as_object_mut() {
        for k in [
            "enqueuedAt",
            "startedAt",
            "finishedAt",
            "duration",
            "batchUid",
        ] {
            o.remove(k);
        }
    }
    v
}

/// The documents of `index` held by `addrs` together, tag removed, by id.
async fn all_documents(
    addrs: &[std::net::SocketAddr],
    index: &str,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    let mut out = std::collections::BTreeMap::new();
    for addr in addrs {
        let mut api = support::meili_api::Api::new(*addr, Some(KEY));
        let resp = api
            .get(&format!("/indexes/{index}/documents?limit=10000"))
            .await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        for mut d in resp.json()["results"].as_array().unwrap().clone() {
            d.as_object_mut().unwrap().shift_remove("_miroir_shard");
            d.as_object_mut().unwrap().shift_remove("_miroir_order");
            let id = match &d["id"] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert!(out.insert(id, d).is_none(), "a document is stored twice");
        }
    }
    out
}

/// The same user script against one real node and against Miroir over three: same answers,
/// same tasks, same final documents; each document on its owner only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_script_gives_the_same_results_as_a_single_node() {
    let Some(bin) = meili::binary() else {
        meili::skip_notice("a_user_script_gives_the_same_results_as_a_single_node");
        return;
    };
    let ReferenceAndFleet {
        single,
        nodes,
        gateway: gw,
    } = ReferenceAndFleet::start(&bin, KEY).await;

    let data = support::data::people();
    let ndjson = b"{\"id\": 3, \"name\": \"Renamed\"}\n{\"id\": 500, \"name\": \"New ndjson\", \"age\": 70, \"color\": \"blue\"}\n".to_vec();
    let csv =
        b"id,name,age:number,color\n600,Csv Person,65,green\n601,\"Other, Person\",21,brown\n"
            .to_vec();
    type Step = (&'static str, String, Option<&'static str>, Vec<u8>);
    let script: Vec<Step> = vec![
        ("POST", "/indexes".into(), Some("application/json"), br#"{"uid":"people","primaryKey":"id"}"#.to_vec()),
        ("POST", "/indexes/people/documents".into(), Some("application/json"), data),
        ("PUT", "/indexes/people/documents".into(), Some("application/x-ndjson"), ndjson),
        ("POST", "/indexes/people/documents".into(), Some("text/csv"), csv),
        ("PATCH", "/indexes/people/settings".into(), Some("application/json"),
            br#"{"filterableAttributes":["color","age"],"sortableAttributes":["age"],"searchableAttributes":["name","about"]}"#.to_vec()),
        ("DELETE", "/indexes/people/documents/5".into(), None, vec![]),
        ("POST", "/indexes/people/documents/delete-batch".into(), Some("application/json"), b"[1, 2, \"3\"]".to_vec()),
        ("POST", "/indexes/people/documents/delete".into(), Some("application/json"), br#"{"filter":"age > 60"}"#.to_vec()),
        ("POST", "/indexes/people/documents".into(), Some("application/json"), br#"[{"id": 900}, {"name": "no id"}]"#.to_vec()),
        ("POST", "/indexes/people/documents".into(), Some("application/json"), br#"[{"id": "bad id!"}]"#.to_vec()),
        ("PUT", "/indexes/people/settings/filterable-attributes".into(), Some("application/json"), br#"["gender"]"#.to_vec()),
        ("POST", "/indexes/people/documents".into(), Some("application/json"), br#"[{"id": 1}, {id: 2}]"#.to_vec()),
        ("POST", "/indexes/people/documents".into(), None, b"[]".to_vec()),
        // The shard tag does not exist for a client: a delete by filter on it fails its task.
        ("POST", "/indexes/people/documents/delete".into(), Some("application/json"), br#"{"filter":"_miroir_shard EXISTS"}"#.to_vec()),
        // A primary key other than the index's fails the task; nothing is written.
        ("POST", "/indexes/people/documents?primaryKey=name".into(), Some("application/json"), br#"[{"id": 4, "name": "overwritten?"}]"#.to_vec()),
        ("PUT", "/indexes/people/documents?primaryKey=name".into(), Some("text/csv"), b"id,name\n4,overwritten?\n".to_vec()),
        // Array elements that are not objects; values only indexing rejects.
        ("POST", "/indexes/people/documents".into(), Some("application/json"), b"[1,2,3]".to_vec()),
        ("POST", "/indexes/people/documents".into(), Some("application/json"), br#"[{"id": 7}, 2]"#.to_vec()),
        ("POST", "/indexes/people/documents".into(), Some("application/json"), format!(r#"[{{"id":8,"deep":{}{}}}]"#, "[".repeat(100_000), "]".repeat(100_000)).into_bytes()),
        ("POST", "/indexes/people/documents".into(), Some("application/json"), br#"[{"id":9,"name":"\ud800"}]"#.to_vec()),
    ];
    let mut a = support::meili_api::Api::new(single.addr, Some(KEY));
    let mut b = support::meili_api::Api::new(gw.addr, Some(KEY));
    for (method, path, ct, body) in &script {
        let ra = a.call(method, path, *ct, body).await;
        let rb = b.call(method, path, *ct, body).await;
        assert_eq!(
            ra.status,
            rb.status,
            "{method} {path}: {} vs {}",
            ra.text(),
            rb.text()
        );
        assert_eq!(
            comparable(ra.json()),
            comparable(rb.json()),
            "{method} {path}"
        );
        if let Some(uid) = ra.json()["taskUid"].as_u64() {
            let ta = a.wait(uid).await;
            let tb = b.wait(uid).await;
            assert_eq!(comparable(ta), comparable(tb), "task of {method} {path}");
        }
    }
    for path in [
        "/indexes/people/settings",
        "/indexes/people/settings/filterable-attributes",
        "/indexes/people",
        "/indexes/people/documents/600",
    ] {
        let (ra, rb) = (a.get(path).await, b.get(path).await);
        assert_eq!(ra.status, rb.status, "{path}");
        let (mut ja, mut jb) = (ra.json(), rb.json());
        for j in [&mut ja, &mut jb] {
            if let Some(o) = j.as_object_mut() {
                o.remove("createdAt");
                o.remove("updatedAt");
            }
        }
        assert_eq!(ja, jb, "{path}");
    }
    let stats_a = a.get("/indexes/people/stats").await.json();
    let stats_b = b.get("/indexes/people/stats").await.json();
    for k in ["numberOfDocuments", "fieldDistribution", "isIndexing"] {
        assert_eq!(stats_a[k], stats_b[k], "stats {k}");
    }
    // Internal databases summed by name, largest first, as a node lists its own.
    let raw = b
        .get("/indexes/people/stats?showInternalDatabaseSizes=true")
        .await
        .json();
    let sizes: Vec<u64> = raw["internalDatabaseSizes"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert!(
        !sizes.is_empty() && sizes.windows(2).all(|w| w[0] >= w[1]),
        "{raw}"
    );
    // Sizes as a node writes them for `sizeFormat=human`.
    for path in [
        "/indexes/people/stats?sizeFormat=human&showInternalDatabaseSizes=true",
        "/stats?sizeFormat=human&showInternalDatabaseSizes=true",
    ] {
        let (sa, sb) = (a.get(path).await.json(), b.get(path).await.json());
        let (ia, ib) = match path.starts_with("/stats") {
            true => (&sa["indexes"]["people"], &sb["indexes"]["people"]),
            false => (&sa, &sb),
        };
        let keys =
            |v: &serde_json::Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>());
        assert_eq!(keys(ia), keys(ib), "{path}: {sa} / {sb}");
        let human = |v: &serde_json::Value| {
            v.as_str().is_some_and(|s| {
                let (n, unit) = s.split_once(' ').unwrap_or(("", ""));
                n.parse::<f64>().is_ok() && ["B", "KiB", "MiB", "GiB"].contains(&unit)
            })
        };
        for v in [&ib["rawDocumentDbSize"], &ib["avgDocumentSize"]]
            .into_iter()
            .chain(ib["internalDatabaseSizes"].as_object().unwrap().values())
        {
            assert!(human(v), "{path}: {v} in {sb}");
        }
        if path.starts_with("/stats") {
            assert!(
                human(&sb["databaseSize"]) && human(&sb["usedDatabaseSize"]),
                "{sb}"
            );
        }
    }
    let expected = all_documents(&[single.addr], "people").await;
    let got = all_documents(&nodes.iter().map(|n| n.addr).collect::<Vec<_>>(), "people").await;
    assert_eq!(expected, got, "the final document sets differ");
    // Each node holds only its shards.
    let config = miroir::config::Config::load(&gw.config_path).unwrap();
    let topo = miroir::topology::Topology::new(&config.cluster, &config.nodes, 1);
    for (i, n) in nodes.iter().enumerate() {
        let docs = support::meili_api::Api::new(n.addr, Some(KEY))
            .get("/indexes/people/documents?limit=10000")
            .await
            .json();
        for d in docs["results"].as_array().unwrap() {
            let id = match &d["id"] {
                serde_json::Value::String(s) => s.clone(),
                o => o.to_string(),
            };
            let shard = miroir::routing::shard_of(id.as_bytes(), topo.shards);
            assert_eq!(topo.owners(shard), [i]);
            assert_eq!(d["_miroir_shard"], miroir::shard_tag::value(shard));
        }
    }
}

/// The shard tag changes no search: on every node, the hits and `_rankingScore`s of queries
/// made of digits, short prefixes and punctuation equal those of an untagged copy of the same
/// documents, whose text holds no digits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shard_tag_changes_no_search_result() {
    let Some(bin) = meili::binary() else {
        meili::skip_notice("the_shard_tag_changes_no_search_result");
        return;
    };
    let reference = MeiliNode::start(&bin, KEY).await;
    let mut nodes = Vec::new();
    for _ in 0..2 {
        nodes.push(MeiliNode::start(&bin, KEY).await);
    }
    let entries: Vec<NodeEntry> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| NodeEntry::new(&format!("m{i}"), &n.url(), "a"))
        .collect();
    let gw =
        GatewayProcess::start(&entries, &Extra::default(), &[("MIROIR_MASTER_KEY", KEY)]).await;
    let words = [
        "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa", "lambda", "sigma",
    ];
    // String ids without digits, and no digit anywhere in the text.
    let docs: Vec<serde_json::Value> = (0..60)
        .map(|i| {
            let id: String = format!("doc-{}", (b'a' + (i % 26) as u8) as char) + &"x".repeat(i / 26 + 1);
            serde_json::json!({"id": id, "title": format!("{} {}", words[i % 10], words[(i * 7) % 10]), "body": words[(i * 3) % 10]})
        })
        .collect();
    let mut gw_api = support::meili_api::Api::new(gw.addr, Some(KEY));
    let t = gw_api
        .write(
            "POST",
            "/indexes/tagged/documents",
            Some("application/json"),
            serde_json::Value::from(docs.clone()).to_string().as_bytes(),
        )
        .await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let mut reference_api = support::meili_api::Api::new(reference.addr, Some(KEY));
    let queries = [
        "1", "12", "0", "9", "a", "s", "sig", "al", "!", "%", "()", "!!!!", "§", "x", "doc",
        "alpha 1", "",
    ];
    for (k, node) in nodes.iter().enumerate() {
        let mut node_api = support::meili_api::Api::new(node.addr, Some(KEY));
        let held = node_api
            .get("/indexes/tagged/documents?limit=1000")
            .await
            .json();
        let held: Vec<serde_json::Value> = held["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let mut d = d.clone();
                d.as_object_mut().unwrap().shift_remove("_miroir_shard");
                d.as_object_mut().unwrap().shift_remove("_miroir_order");
                d
            })
            .collect();
        assert!(!held.is_empty());
        let plain = format!("plain{k}");
        let t = reference_api
            .write(
                "POST",
                &format!("/indexes/{plain}/documents?primaryKey=id"),
                Some("application/json"),
                serde_json::Value::from(held).to_string().as_bytes(),
            )
            .await;
        assert_eq!(t["status"], "succeeded");
        for q in queries {
            let body = serde_json::json!({"q": q, "showRankingScore": true, "attributesToRetrieve": ["id"], "limit": 100});
            let tagged = node_api
                .json("POST", "/indexes/tagged/search", &body)
                .await
                .json();
            let untagged = reference_api
                .json("POST", &format!("/indexes/{plain}/search"), &body)
                .await
                .json();
            assert_eq!(tagged["hits"], untagged["hits"], "query {q:?} on node {k}");
            assert_eq!(
                tagged["estimatedTotalHits"], untagged["estimatedTotalHits"],
                "query {q:?} on node {k}"
            );
        }
        // The tag still filters.
        let shard_docs = node_api
            .json("POST", "/indexes/tagged/search", &serde_json::json!({"filter": format!("_miroir_shard = \"{}\"", miroir::shard_tag::value(0)), "limit": 100}))
            .await;
        assert_eq!(shard_docs.status, 200, "{}", shard_docs.text());
    }
}
