//! A gateway killed (`kill -9`) in the middle of a write leaves no split fleet: the write was
//! recorded before any node received it, and the next start completes it on every owner,
//! with a task. Test nodes on loopback; the test ends by itself.

use crate::support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::fake_node::FakeNode;
use support::gateway::{eventually, Extra, GatewayProcess, NodeEntry};
use support::meili_api::Api;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_mid_write_completes_it_on_every_node_after_restart() {
    let n1 = FakeNode::start("n1", None).await;
    let n2 = FakeNode::start("n2", None).await;
    // n3 passes its health checks but never answers anything else: the write to it is in
    // flight when the gateway dies (were n3 marked down first, the write would wait as a
    // hint instead, another path).
    let hole = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let n3_addr = hole.local_addr().unwrap();
    let written = Arc::new(AtomicBool::new(false));
    let seen = written.clone();
    let held = tokio::spawn(async move {
        // Dropped with this task (aborted below): every connection closes with it.
        let mut open = tokio::task::JoinSet::new();
        while let Ok((s, _)) = hole.accept().await {
            open.spawn(health_only(s, seen.clone()));
        }
    });
    let entries = vec![
        NodeEntry::new("n1", &n1.url(), "a"),
        NodeEntry::new("n2", &n2.url(), "a"),
        NodeEntry::new("n3", &format!("http://{n3_addr}"), "a"),
    ];
    let mut gw = GatewayProcess::start(&entries, &Extra::default(), &[]).await;
    let docs: Vec<Value> = (0..300)
        .map(|i| json!({"id": i, "title": format!("document {i}")}))
        .collect();
    let body = Value::from(docs).to_string();
    let mut api = Api::new(gw.addr, None);
    let write = api.call(
        "POST",
        "/indexes/fresh/documents",
        Some("application/json"),
        body.as_bytes(),
    );
    // The client's write is under way (n1, n2 answered, n3 never will) when the gateway dies.
    let _ = tokio::time::timeout(Duration::from_millis(800), write).await;
    let reached = eventually(Duration::from_secs(10), async || {
        written.load(Ordering::Relaxed)
    })
    .await;
    assert!(reached, "the write never reached n3\n{}", gw.log());
    assert!(!n1.documents("fresh").is_empty() || !n2.documents("fresh").is_empty());
    // The gateway dies first: were n3's connections closed while it lived, the write would
    // fail over to a hint and finish before the kill, another path.
    gw.kill();
    held.abort();
    let _ = held.await;
    // The address is free once the listener is gone.
    let free = eventually(Duration::from_secs(5), async || {
        std::net::TcpListener::bind(n3_addr).is_ok()
    })
    .await;
    assert!(free, "{n3_addr} stays taken");
    let n3 = FakeNode::start_at("n3", None, n3_addr).await;
    gw.restart().await;

    // Every node ends with its share, the index everywhere, each document once.
    let converged = eventually(Duration::from_secs(20), async || {
        let total: usize = [&n1, &n2, &n3]
            .iter()
            .map(|n| n.documents("fresh").len())
            .sum();
        total == 300 && !n3.documents("fresh").is_empty()
    })
    .await;
    let counts: Vec<usize> = [&n1, &n2, &n3]
        .iter()
        .map(|n| n.documents("fresh").len())
        .collect();
    assert!(converged, "documents per node: {counts:?}\n{}", gw.log());
    let mut ids = BTreeSet::new();
    for n in [&n1, &n2, &n3] {
        for id in n.documents("fresh").keys() {
            assert!(ids.insert(id.clone()), "document {id} on two nodes");
        }
    }
    // The interrupted write has a task, and it finishes.
    let mut api = Api::new(gw.addr, None);
    let tasks = api.get("/tasks?indexUids=fresh").await.json();
    let uid = tasks["results"][0]["uid"]
        .as_u64()
        .expect("a task for the write");
    let task = api.wait(uid).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(task["type"], "documentAdditionOrUpdate");
    assert!(gw.log().contains("in flight when the gateway stopped"));
    // Reads see every document.
    let found = api
        .json(
            "POST",
            "/indexes/fresh/search",
            &json!({"q": "", "limit": 0}),
        )
        .await
        .json();
    assert_eq!(found["estimatedTotalHits"], 300, "{found}");
}

/// Answers `GET /health` requests on `conn`; holds the connection, unanswered, at the first
/// other request (noted in `written`).
async fn health_only(mut conn: TcpStream, written: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let Ok(n) = conn.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        if !buf[..n].starts_with(b"GET /health ") {
            written.store(true, Ordering::Relaxed);
            std::future::pending::<()>().await;
        }
        let body = r#"{"status":"available"}"#;
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if conn.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}
