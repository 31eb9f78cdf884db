//! `POST /export` on the test node, and the same scenarios against real Meilisearch nodes when
//! a `meilisearch` binary is available: the test node must behave as they do.

use crate::support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::fake_node::FakeNode;
use support::gateway::{free_addr, ScratchDir};
use support::http::Client;
use support::meili;
use support::meili_api::Api;

const SOURCE_KEY: &str = "export-source-master-key-0123";
const TARGET_KEY: &str = "export-target-master-key-4567";

/// A real node started with extra options (`--experimental-allowed-ip-networks`); killed on
/// drop.
struct RealNode {
    addr: SocketAddr,
    child: Child,
    _dir: ScratchDir,
}

impl RealNode {
    async fn start(bin: &PathBuf, key: &str, extra: &[&str]) -> RealNode {
        let dir = ScratchDir::new("export");
        let addr = free_addr();
        let child = Command::new(bin)
            .arg("--db-path")
            .arg(dir.0.join("data.ms"))
            .arg("--dump-dir")
            .arg(dir.0.join("dumps"))
            .arg("--snapshot-dir")
            .arg(dir.0.join("snapshots"))
            .arg("--http-addr")
            .arg(addr.to_string())
            .arg("--master-key")
            .arg(key)
            .arg("--no-analytics")
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn meilisearch");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Client::new(addr)
            .get("/health")
            .await
            .map_or(true, |m| m.status != 200)
        {
            assert!(Instant::now() < deadline, "meilisearch did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        RealNode {
            addr,
            child,
            _dir: dir,
        }
    }
}

impl Drop for RealNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A task view without what differs from run to run.
fn shape(mut task: Value) -> Value {
    for k in [
        "uid",
        "batchUid",
        "canceledBy",
        "enqueuedAt",
        "startedAt",
        "finishedAt",
        "duration",
    ] {
        if let Some(v) = task.get_mut(k) {
            if !v.is_null() {
                *v = json!("<set>");
            }
        }
    }
    task
}

/// The summary `POST` answers give, without the time.
fn summary(resp: &support::http::Message) -> (u16, Value) {
    let mut body = resp.json();
    body["enqueuedAt"] = json!("<set>");
    body["taskUid"] = json!("<set>");
    (resp.status, body)
}

/// Source data: two indexes, tags holding the characters shard tags hold.
async fn seed(api: &mut Api) {
    api.write(
        "POST",
        "/indexes",
        Some("application/json"),
        br#"{"uid":"movies","primaryKey":"id"}"#,
    )
    .await;
    let t = api
        .write(
            "PATCH",
            "/indexes/movies/settings",
            Some("application/json"),
            br#"{"filterableAttributes":["_miroir_shard","genre"]}"#,
        )
        .await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let docs = json!([
        {"id": 1, "title": "A", "genre": "action", "_miroir_shard": "a"},
        {"id": 2, "title": "B", "genre": "drama", "_miroir_shard": "b,]"},
        {"id": 3, "title": "C", "genre": "action", "_miroir_shard": "c"},
        {"id": "x4", "title": "D", "nested": {"n": [1, 2]}, "_miroir_shard": "a"},
        {"id": 5, "title": "E", "genre": "drama", "_miroir_shard": "c"},
    ]);
    let t = api
        .write(
            "POST",
            "/indexes/movies/documents",
            Some("application/json"),
            docs.to_string().as_bytes(),
        )
        .await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let t = api
        .write(
            "POST",
            "/indexes/books/documents?primaryKey=isbn",
            Some("application/json"),
            br#"[{"isbn":"b1","t":"x"}]"#,
        )
        .await;
    assert_eq!(t["status"], "succeeded", "{t}");
}

/// Waits until no task of the node is enqueued or processing.
async fn settle(api: &mut Api) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tasks = api.get("/tasks?limit=1000").await.json();
        let busy = tasks["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["status"] == "enqueued" || t["status"] == "processing");
        if !busy {
            return;
        }
        assert!(Instant::now() < deadline, "tasks never settled: {tasks}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a target holds of an index: its primary key, filterable attributes and documents.
async fn holdings(api: &mut Api, index: &str) -> Value {
    let info = api.get(&format!("/indexes/{index}")).await;
    if info.status != 200 {
        return json!({"status": info.status, "code": info.json()["code"]});
    }
    let settings = api.get(&format!("/indexes/{index}/settings")).await.json();
    let fetched = api
        .json(
            "POST",
            &format!("/indexes/{index}/documents/fetch"),
            &json!({"limit": 1000}),
        )
        .await
        .json();
    let mut docs = fetched["results"].as_array().unwrap().clone();
    docs.sort_by_key(|d| d.to_string());
    json!({
        "primaryKey": info.json()["primaryKey"],
        "filterableAttributes": settings["filterableAttributes"],
        "documents": docs,
        "total": fetched["total"],
    })
}

/// Exports from an allowed source; returns everything the two implementations must agree on.
async fn allowed_export(source: SocketAddr, target: SocketAddr) -> Value {
    let mut src = Api::new(source, Some(SOURCE_KEY));
    let mut dst = Api::new(target, Some(TARGET_KEY));
    seed(&mut src).await;
    // `total` counts every match even with `limit: 0`.
    let counted = src
        .json(
            "POST",
            "/indexes/movies/documents/fetch",
            &json!({"filter": "_miroir_shard IN [\"a\", \"b,]\"]", "limit": 0}),
        )
        .await;
    let body = json!({
        "url": format!("http://{target}"),
        "apiKey": TARGET_KEY,
        "payloadSize": 60,
        "indexes": {
            "mov*": {"filter": "_miroir_shard IN [\"a\", \"b,]\"]"},
            "books": {"overrideSettings": true},
            "none": {},
        },
    });
    let resp = src.json("POST", "/export", &body).await;
    let answer = summary(&resp);
    let task = src.wait(resp.json()["taskUid"].as_u64().unwrap()).await;
    settle(&mut dst).await;
    let bad_filter = src
        .json(
            "POST",
            "/export",
            &json!({"url": format!("http://{target}"), "indexes": {"movies": {"filter": "genre = "}}}),
        )
        .await;
    let bad_filter = src
        .wait(bad_filter.json()["taskUid"].as_u64().unwrap())
        .await;
    let wrong_key = src
        .json(
            "POST",
            "/export",
            &json!({"url": format!("http://{target}"), "apiKey": "wrong-key-123", "indexes": {"books": {}}}),
        )
        .await;
    let wrong_key = src
        .wait(wrong_key.json()["taskUid"].as_u64().unwrap())
        .await;
    json!({
        "counted": (counted.status, counted.json()),
        "answer": answer,
        "task": shape(task),
        "movies": holdings(&mut dst, "movies").await,
        "books": holdings(&mut dst, "books").await,
        "badFilter": shape(bad_filter),
        "wrongKey": shape(wrong_key),
    })
}

/// Exports from a source that refuses loopback targets: the task keeps retrying (and holds
/// the source's queue) until canceled.
async fn refused_export(source: SocketAddr, target: SocketAddr) -> Value {
    let mut src = Api::new(source, Some(SOURCE_KEY));
    let mut dst = Api::new(target, Some(TARGET_KEY));
    seed(&mut src).await;
    let body =
        json!({"url": format!("http://{target}"), "apiKey": TARGET_KEY, "indexes": {"movies": {}}});
    let resp = src.json("POST", "/export", &body).await;
    let answer = summary(&resp);
    let uid = resp.json()["taskUid"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let processing = shape(src.get(&format!("/tasks/{uid}")).await.json());
    let write = src
        .call(
            "POST",
            "/indexes/movies/documents",
            Some("application/json"),
            br#"[{"id": 9, "title": "late"}]"#,
        )
        .await;
    let write_uid = write.json()["taskUid"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting = src.get(&format!("/tasks/{write_uid}")).await.json()["status"].clone();
    let cancel = src
        .call("POST", &format!("/tasks/cancel?uids={uid}"), None, b"")
        .await;
    let cancel_answer = summary(&cancel);
    let cancelation = src.wait(cancel.json()["taskUid"].as_u64().unwrap()).await;
    let canceled = src.wait(uid).await;
    assert_eq!(canceled["canceledBy"], cancelation["uid"], "{canceled}");
    let written = src.wait(write_uid).await;
    json!({
        "answer": answer,
        "processing": processing,
        "writeWhileExporting": waiting,
        "cancelAnswer": cancel_answer,
        "cancelation": shape(cancelation),
        "canceled": shape(canceled),
        "writeAfter": written["status"],
        "target": holdings(&mut dst, "movies").await,
    })
}

/// Bodies `POST /export` refuses at once, with the answers.
async fn refusals(source: SocketAddr) -> Vec<(u16, Value)> {
    let mut src = Api::new(source, Some(SOURCE_KEY));
    let mut out = Vec::new();
    for body in [
        r#"{"url":1}"#,
        r#"{"url":null}"#,
        r#"{"url":"http://x","apiKey":3}"#,
        r#"{"url":"http://x","payloadSize":true}"#,
        r#"{"url":"http://x","payloadSize":-1}"#,
        r#"{"url":"http://x","payloadSize":1.5}"#,
        r#"{"url":"http://x","payloadSize":"abc"}"#,
        r#"{"url":"http://x","payloadSize":"12 XB"}"#,
        r#"{"url":"http://x","payloadSize":""}"#,
        r#"{"url":"http://x","indexes":[]}"#,
        r#"{"url":"http://x","indexes":{"bad index!":{}}}"#,
        r#"{"url":"http://x","indexes":{"a*b":{}}}"#,
        r#"{"url":"http://x","indexes":{"m":null}}"#,
        r#"{"url":"http://x","indexes":{"m":{"overrideSettings":"yes"}}}"#,
        r#"{"url":"http://x","indexes":{"m":{"foo":1}}}"#,
        r#"{"url":"http://x","foo":1}"#,
        r#"[]"#,
        r#"notjson"#,
        "",
    ] {
        let resp = src
            .call("POST", "/export", Some("application/json"), body.as_bytes())
            .await;
        out.push((resp.status, resp.json()));
    }
    let resp = src
        .call("POST", "/export", None, br#"{"url":"http://x"}"#)
        .await;
    out.push((resp.status, resp.json()));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_export_pushes_filtered_documents_and_settings() {
    let source = FakeNode::start_allowing("src", Some(SOURCE_KEY), &["127.0.0.0/8"]).await;
    let target = FakeNode::start("dst", Some(TARGET_KEY)).await;
    let got = allowed_export(source.addr, target.addr).await;

    assert_eq!(
        got["answer"],
        json!([200, {"taskUid": "<set>", "indexUid": null, "status": "enqueued", "type": "export", "enqueuedAt": "<set>"}])
    );
    assert_eq!(
        got["counted"],
        json!([200, {"results": [], "offset": 0, "limit": 0, "total": 3}])
    );
    assert_eq!(got["task"]["status"], "succeeded", "{got}");
    assert_eq!(
        got["task"]["details"],
        json!({"url": format!("http://{}", target.addr), "apiKey": "expXXXXX...", "payloadSize": "60 B", "indexes": {
            "books": {"filter": null, "overrideSettings": true, "matched_documents": 1},
            "movies": {"filter": "_miroir_shard IN [\"a\", \"b,]\"]", "overrideSettings": false, "matched_documents": 3},
        }})
    );
    assert_eq!(got["movies"]["total"], 3, "{got}");
    assert_eq!(got["movies"]["primaryKey"], "id");
    assert_eq!(
        got["movies"]["filterableAttributes"],
        json!(["_miroir_shard", "genre"])
    );
    assert_eq!(got["books"]["primaryKey"], "isbn");
    assert_eq!(got["badFilter"]["status"], "failed");
    assert_eq!(got["badFilter"]["error"]["code"], "invalid_document_filter");
    assert_eq!(
        got["wrongKey"]["error"]["message"],
        "Failed to export documents to remote server invalid_api_key (auth): The provided API key is invalid. <https://docs.meilisearch.com/errors#invalid_api_key>"
    );

    // What the target saw: Meilisearch's sequence, the key, gzip ndjson batches of 60 bytes.
    let seen: Vec<(String, String)> = target
        .state
        .lock()
        .unwrap()
        .received
        .iter()
        .filter(|m| m.header("user-agent") == Some("ureq/3.3.0"))
        .map(|m| (m.method.clone(), m.target.clone()))
        .collect();
    let s = |m: &str, p: &str| (m.to_string(), p.to_string());
    assert_eq!(
        seen[..9],
        [
            s("GET", "/indexes/books"),
            s("POST", "/indexes"),
            s("PATCH", "/indexes/books/settings"),
            s("POST", "/indexes/books/documents"),
            s("GET", "/indexes/movies"),
            s("POST", "/indexes"),
            s("PATCH", "/indexes/movies/settings"),
            s("POST", "/indexes/movies/documents"),
            s("POST", "/indexes/movies/documents"),
        ]
    );
    let batches = target.received("/indexes/movies/documents");
    assert!(batches.iter().all(|b| {
        b.header("authorization") == Some(&format!("Bearer {TARGET_KEY}"))
            && b.header("content-type") == Some("application/x-ndjson")
            && b.header("content-encoding") == Some("gzip")
    }));
    assert_eq!(batches.len(), 3, "one document per 60-byte batch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_export_to_loopback_is_refused_by_default() {
    let source = FakeNode::start("src", Some(SOURCE_KEY)).await;
    let target = FakeNode::start("dst", Some(TARGET_KEY)).await;
    let got = refused_export(source.addr, target.addr).await;
    assert_eq!(got["processing"]["status"], "processing", "{got}");
    assert_eq!(got["writeWhileExporting"], "enqueued");
    assert_eq!(got["canceled"]["status"], "canceled");
    assert_eq!(got["writeAfter"], "succeeded");
    assert_eq!(got["target"]["code"], "index_not_found");
    let exported = target
        .state
        .lock()
        .unwrap()
        .received
        .iter()
        .any(|m| m.header("user-agent") == Some("ureq/3.3.0"));
    assert!(!exported, "the refused export reached the target");

    // With a short retry window the task fails as Meilisearch's does after 15 minutes.
    source.set_export_retry_for(Duration::from_millis(300));
    let mut src = Api::new(source.addr, Some(SOURCE_KEY));
    let body = json!({"url": target.url(), "indexes": {"movies": {}}});
    let resp = src.json("POST", "/export", &body).await;
    let task = src.wait(resp.json()["taskUid"].as_u64().unwrap()).await;
    assert_eq!(task["status"], "failed", "{task}");
    assert_eq!(task["error"]["code"], "internal", "{task}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_export_refuses_bad_bodies_at_once() {
    let source = FakeNode::start("src", Some(SOURCE_KEY)).await;
    let got = refusals(source.addr).await;
    assert!(got.iter().all(|(status, _)| *status >= 400), "{got:?}");
    assert_eq!(
        got[0].1["message"],
        "Invalid value type at `.url`: expected a string, but found a positive integer: `1`"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_export_matches_real_meilisearch() {
    let Some(bin) = meili::binary() else {
        meili::skip_notice("fake_export_matches_real_meilisearch");
        return;
    };
    let allow = ["--experimental-allowed-ip-networks", "127.0.0.0/8"];

    // Allowed: same task, same target contents.
    let real_source = RealNode::start(&bin, SOURCE_KEY, &allow).await;
    let real_target = RealNode::start(&bin, TARGET_KEY, &[]).await;
    let mut real = allowed_export(real_source.addr, real_target.addr).await;
    let fake_source = FakeNode::start_allowing("src", Some(SOURCE_KEY), &["127.0.0.0/8"]).await;
    let fake_target = FakeNode::start("dst", Some(TARGET_KEY)).await;
    let mut fake = allowed_export(fake_source.addr, fake_target.addr).await;
    // The URLs name different ports; the fake's filter errors are the same code, not always
    // the same words.
    for v in [&mut real, &mut fake] {
        v["task"]["details"]["url"] = json!("<url>");
        v["badFilter"]["details"]["url"] = json!("<url>");
        v["wrongKey"]["details"]["url"] = json!("<url>");
    }
    assert_eq!(real, fake);

    // A test node's export lands on a real node the same way (its gzip is stored blocks).
    let real_target = RealNode::start(&bin, TARGET_KEY, &[]).await;
    let fake_source = FakeNode::start_allowing("src3", Some(SOURCE_KEY), &["127.0.0.0/8"]).await;
    let mut mixed = allowed_export(fake_source.addr, real_target.addr).await;
    for k in ["task", "badFilter", "wrongKey"] {
        mixed[k]["details"]["url"] = json!("<url>");
    }
    assert_eq!(real, mixed);

    // Refused: both keep retrying, hold their queue, and cancel the same way.
    let real_source = RealNode::start(&bin, SOURCE_KEY, &[]).await;
    let real = refused_export(real_source.addr, real_target.addr).await;
    let fake_source = FakeNode::start("src2", Some(SOURCE_KEY)).await;
    let fake = refused_export(fake_source.addr, fake_target.addr).await;
    let strip = |mut v: Value| {
        for k in ["processing", "canceled"] {
            v[k]["details"]["url"] = json!("<url>");
        }
        v["target"] = json!(null);
        v
    };
    assert_eq!(strip(real), strip(fake));

    // Refusals at once: same status and body.
    assert_eq!(
        refusals(real_source.addr).await,
        refusals(fake_source.addr).await
    );
}
