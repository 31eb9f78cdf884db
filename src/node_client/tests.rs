//! The client against a small HTTP/1.1 server on loopback: a request goes out in one piece,
//! a connection serves the next request of its thread, and one the server closed is never
//! the reason a request fails.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::config::{Limits, Timeouts};

/// What the server saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    /// Requests whose head and body came in the first read of their connection turn.
    whole_in_one_read: AtomicUsize,
    requests: AtomicUsize,
}

/// Answers `{"n":<request number>}` to every request; closes each connection after
/// `per_connection` answers.
async fn server(per_connection: usize) -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            s.connections.fetch_add(1, Ordering::SeqCst);
            let s = s.clone();
            tokio::spawn(async move {
                for _ in 0..per_connection {
                    let mut buf = vec![0u8; 4096];
                    let Ok(n) = conn.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    let text = String::from_utf8_lossy(&buf[..n]).to_string();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else {
                        return;
                    };
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    if body.len() == length {
                        s.whole_in_one_read.fetch_add(1, Ordering::SeqCst);
                    }
                    let n = s.requests.fetch_add(1, Ordering::SeqCst) + 1;
                    let answer = format!("{{\"n\":{n}}}");
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    if conn.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
                // Dropped: the connection is closed.
            });
        }
    });
    (addr, seen)
}

fn node(addr: SocketAddr) -> Node {
    Node {
        id: "n".into(),
        url: format!("http://{addr}"),
        authority: addr.to_string(),
        addr,
        group: 0,
        draining: false,
    }
}

fn client() -> NodeClient {
    let second = Duration::from_secs(1);
    NodeClient::new(
        Timeouts {
            connect: second,
            read: second,
            write: second,
            idle: Duration::from_secs(60),
            request: second,
        },
        Limits {
            node_concurrency: 8,
            node_payload_bytes: 1 << 20,
        },
    )
}

fn post(body: &str) -> NodeRequest {
    NodeRequest {
        method: Method::POST,
        path: "/indexes/movies/search".into(),
        headers: vec![(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        )],
        body: Bytes::from(body.to_string()),
    }
}

#[tokio::test]
async fn requests_go_out_whole_and_share_one_connection() {
    let (addr, seen) = server(usize::MAX).await;
    let client = client();
    let node = node(addr);
    for n in 1..=5 {
        let resp = client.send(&node, &post(r#"{"q":"red"}"#)).await.unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(&resp.body[..], format!("{{\"n\":{n}}}").as_bytes());
    }
    let get = NodeRequest::get("/health");
    assert_eq!(client.send(&node, &get).await.unwrap().status, 200);
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
    assert_eq!(seen.whole_in_one_read.load(Ordering::SeqCst), 6);
}

/// Sends `rounds` requests to a server that closes each connection after one answer,
/// pausing `pause` between them; every one must get its own answer.
async fn one_answer_per_connection(rounds: usize, pause: Duration) -> Arc<Seen> {
    let (addr, seen) = server(1).await;
    let client = client();
    let node = node(addr);
    for n in 1..=rounds {
        let resp = client.send(&node, &post("{}")).await.unwrap();
        assert_eq!(&resp.body[..], format!("{{\"n\":{n}}}").as_bytes());
        tokio::time::sleep(pause).await;
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), rounds);
    seen
}

#[tokio::test]
async fn a_connection_the_node_closed_is_replaced() {
    // The pause lets each close reach this side before the next request.
    let seen = one_answer_per_connection(4, Duration::from_millis(20)).await;
    assert_eq!(seen.connections.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_close_not_yet_seen_is_retried_once_on_a_fresh_connection() {
    // No pause: the next request may take the kept connection before its close is seen;
    // the write or the read then fails without an answer and a fresh connection is used.
    one_answer_per_connection(20, Duration::ZERO).await;
}

#[tokio::test]
async fn an_informational_answer_is_followed_by_the_real_one() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let _ = conn.read(&mut buf).await;
        let answer =
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}";
        let _ = conn.write_all(answer.as_bytes()).await;
        let _ = conn.read(&mut buf).await;
    });
    let resp = client().send(&node(addr), &post("{}")).await.unwrap();
    assert_eq!((resp.status, &resp.body[..]), (202, &b"{}"[..]));
}
