//! Slow, idle and greedy clients cannot take the gateway down: a slow first request head gets
//! `408` as from a node, connections are capped with some kept for `GET /health`, idle
//! keep-alive connections are closed, too many headers get `431`, and pipelined requests are
//! all answered. Everything here talks to loopback and ends by itself.

use crate::support;

use std::time::{Duration, Instant};

use support::fake_node::FakeNode;
use support::gateway::{eventually, Extra, GatewayProcess, NodeEntry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(clients: &str) -> (Vec<FakeNode>, GatewayProcess) {
    let mut nodes = Vec::new();
    for name in ["n1", "n2"] {
        nodes.push(FakeNode::start(name, None).await);
    }
    let entries: Vec<NodeEntry> = nodes
        .iter()
        .map(|n| NodeEntry::new(&n.name, &n.url(), "a"))
        .collect();
    let extra = Extra {
        tail: format!("[clients]\n{clients}\n"),
        ..Extra::default()
    };
    let gw = GatewayProcess::start(&entries, &extra, &[]).await;
    (nodes, gw)
}

/// Everything the server sends until it closes the connection (or `within` passes).
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET /health` on a fresh connection: the status line.
async fn health(addr: std::net::SocketAddr) -> String {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return "connect failed".into();
    };
    let req = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if s.write_all(req).await.is_err() {
        return "write failed".into();
    }
    let text = read_to_close(&mut s, Duration::from_secs(5)).await;
    text.lines().next().unwrap_or("closed").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_head_gets_408_while_health_keeps_answering() {
    let (_nodes, gw) = start("header_timeout_ms = 600").await;
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(b"GET /indexes HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    assert_eq!(health(gw.addr).await, "HTTP/1.1 200 OK");
    let started = Instant::now();
    // One more header line, then nothing: the deadline counts from the connection's start.
    slow[0].write_all(b"X-Slow: 1\r\n").await.unwrap();
    let text = read_to_close(&mut slow[0], Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    for s in &mut slow[1..] {
        let text = read_to_close(s, Duration::from_secs(5)).await;
        assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
    }
    assert_eq!(
        gw.metric("miroir_client_header_timeouts_total").await,
        Some(50.0)
    );
    assert_eq!(health(gw.addr).await, "HTTP/1.1 200 OK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_refused_but_health_checks_get_through() {
    let (_nodes, gw) =
        start("max_connections = 20\nreserved_connections = 3\nheader_timeout_ms = 20000").await;
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(gw.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Past the cap: a health check is answered, anything else is refused.
    assert_eq!(health(gw.addr).await, "HTTP/1.1 200 OK");
    let mut other = TcpStream::connect(gw.addr).await.unwrap();
    other
        .write_all(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let text = read_to_close(&mut other, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 503"), "{text:?}");
    // Past the reserve too: closed at once.
    let mut reserve = Vec::new();
    for _ in 0..3 {
        reserve.push(TcpStream::connect(gw.addr).await.unwrap());
    }
    // Well within the reserve's 250 ms head deadline: the reserve must still be full when
    // the next connection comes (they are accepted in order).
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut refused = TcpStream::connect(gw.addr).await.unwrap();
    let text = read_to_close(&mut refused, Duration::from_secs(5)).await;
    assert_eq!(text, "");
    assert!(gw
        .metric("miroir_client_connections_refused_total")
        .await
        .is_some_and(|n| n >= 2.0));
    assert!(gw.log().contains("client connection limit reached"));
    // Once they go, the gateway serves again.
    drop(idle);
    drop(reserve);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let text = read_to_close(&mut s, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text:?}");
    let closed = eventually(Duration::from_secs(3), async || {
        gw.metric("miroir_client_connections").await == Some(0.0)
    });
    assert!(closed.await, "connections are counted until they close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed() {
    let (_nodes, gw) = start("idle_timeout_ms = 1000").await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let text = read_to_close(&mut s, Duration::from_secs(10)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_headers_get_431_and_pipelined_requests_are_all_answered() {
    let (_nodes, gw) = start("").await;
    let mut head = String::from("GET /health HTTP/1.1\r\nHost: x\r\n");
    for i in 0..1000 {
        head.push_str(&format!("X-H{i}: v\r\n"));
    }
    head.push_str("\r\n");
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let text = read_to_close(&mut s, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 431"), "{text:?}");

    // 97 headers on a kept-alive connection: the same answer.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let mut two =
        String::from("GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n");
    for i in 0..96 {
        two.push_str(&format!("X-H{i}: v\r\n"));
    }
    two.push_str("Connection: close\r\n\r\n");
    s.write_all(two.as_bytes()).await.unwrap();
    let text = read_to_close(&mut s, Duration::from_secs(5)).await;
    assert_eq!(text.matches("HTTP/1.1 200").count(), 1, "{text:?}");
    assert_eq!(text.matches("HTTP/1.1 431").count(), 1, "{text:?}");

    // Two requests in one write, one of them served by the proxy path: two answers.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let text = read_to_close(&mut s, Duration::from_secs(5)).await;
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text:?}");
    assert!(text.contains("pkgVersion"), "{text:?}");
}
