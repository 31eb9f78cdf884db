//! The gateway binary against Meilisearch-compatible test nodes: one-node routes, its own
//! endpoints, errors, auth and metrics.

use crate::support;

use std::time::Duration;

use support::fake_node::FakeNode;
use support::gateway::{eventually, Extra, GatewayProcess, NodeEntry};
use support::http::{request, Client};

async fn fleet(master_key: Option<&str>) -> (Vec<FakeNode>, GatewayProcess) {
    let nodes = FakeNode::three(master_key).await;
    let entries = NodeEntry::for_fakes(&nodes);
    let env: Vec<(&str, &str)> = master_key
        .map(|k| ("MIROIR_MASTER_KEY", k))
        .into_iter()
        .collect();
    let gw = GatewayProcess::start(&entries, &Extra::default(), &env).await;
    (nodes, gw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_routes_are_proxied_with_a_request_id() {
    let (nodes, gw) = fleet(None).await;
    let mut client = Client::new(gw.addr);
    for _ in 0..6 {
        let resp = client.get("/version").await.unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.json()["pkgVersion"], "1.50.0");
        assert!(resp.header("x-request-id").is_some_and(|id| id.len() == 36));
    }
    // Rotation spreads the requests over the healthy nodes.
    let served: Vec<usize> = nodes.iter().map(|n| n.received("/version").len()).collect();
    assert_eq!(served.iter().sum::<usize>(), 6);
    assert!(served.iter().filter(|&&c| c > 0).count() >= 2, "{served:?}");

    // An incoming request id is kept, forwarded to the node and echoed.
    let resp = client
        .send(
            "GET",
            "/indexes?limit=5",
            &[("x-request-id", "trace-42")],
            b"",
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-request-id"), Some("trace-42"));
    let forwarded: Vec<_> = nodes.iter().flat_map(|n| n.received("/indexes")).collect();
    assert_eq!(forwarded.len(), 1);
    assert_eq!(forwarded[0].header("x-request-id"), Some("trace-42"));
    assert_eq!(forwarded[0].query(), "limit=5");

    // A node's own error passes through untouched.
    let resp = client.get("/indexes/movies").await.unwrap();
    assert_eq!(resp.status, 404);
    assert_eq!(resp.json()["code"], "index_not_found");
    assert_eq!(resp.json()["message"], "Index `movies` not found.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_answers_are_meilisearch_shaped_and_keep_alive_safe() {
    let (_nodes, gw) = fleet(None).await;
    // One kept-alive connection through every kind of local answer: a missing
    // Content-Length would make the next request on it time out.
    let mut client = Client::new(gw.addr);
    client.timeout = Duration::from_secs(3);

    let health = client.get("/health").await.unwrap();
    assert_eq!(
        (health.status, health.text()),
        (200, r#"{"status":"available"}"#.to_string())
    );
    assert_eq!(health.header("content-type"), Some("application/json"));

    // `/metrics` as on a node: refused until the experimental feature is on (on every
    // node, by broadcast), then every node's metrics labelled with the node, and the
    // gateway's own.
    let resp = client.send("GET", "/metrics", &[], b"").await.unwrap();
    assert_eq!(resp.status, 400, "{}", resp.text());
    let body = resp.json();
    assert_eq!(body["code"], "feature_not_enabled");
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["message", "code", "type", "link"]
    );
    let ct = [("content-type", "application/json")];
    let on = client
        .send(
            "PATCH",
            "/experimental-features",
            &ct,
            br#"{"metrics":true}"#,
        )
        .await
        .unwrap();
    assert_eq!(
        (on.status, on.json()["metrics"].clone()),
        (200, serde_json::json!(true))
    );
    let resp = client.send("GET", "/metrics", &[], b"").await.unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    let text = resp.text();
    assert_eq!(
        text.matches("# TYPE meilisearch_index_count gauge").count(),
        1,
        "{text}"
    );
    for node in &_nodes {
        let sample = format!("meilisearch_index_count{{node=\"{}\"}}", node.name);
        assert!(text.contains(&sample), "{sample} missing:\n{text}");
    }
    assert!(
        text.contains("# TYPE miroir_requests_total counter"),
        "{text}"
    );

    // A node's own features say why they mean nothing through the gateway.
    for (method, path, feature) in [
        ("POST", "/export", "/export"),
        ("GET", "/network", "/network"),
        ("POST", "/logs/stream", "/logs"),
        ("GET", "/chats", "/chats"),
    ] {
        let resp = client
            .send(method, path, &[("content-type", "application/json")], b"{}")
            .await
            .unwrap();
        assert_eq!(resp.status, 501, "{path}");
        let body = resp.json();
        assert_eq!(body["code"], "miroir_node_local_feature", "{path}");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("`{feature}` is not available through Miroir: ")),
            "{message}"
        );
    }

    let resp = client.get("/no/such/route").await.unwrap();
    assert_eq!((resp.status, resp.body.len()), (404, 0));
    let resp = client
        .send("PUT", "/indexes/movies/search", &[], b"")
        .await
        .unwrap();
    assert_eq!(
        (resp.status, resp.header("allow")),
        (405, Some("GET, POST"))
    );

    let resp = client.get("/version").await.unwrap();
    assert_eq!(resp.status, 200, "the connection is still usable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_413() {
    let node = FakeNode::start("n1", None).await;
    let extra = Extra {
        server: "max_body_bytes = 100\n".into(),
        ..Extra::default()
    };
    let gw = GatewayProcess::start(&[NodeEntry::new("n1", &node.url(), "a")], &extra, &[]).await;
    let mut client = Client::new(gw.addr);
    let resp = client
        .send(
            "POST",
            "/indexes/m/documents",
            &[("content-type", "application/json")],
            &[b'x'; 101],
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 413);
    assert_eq!(resp.json()["code"], "payload_too_large");
    assert_eq!(
        resp.json()["message"],
        "The provided payload reached the size limit. The maximum accepted payload size is 100 B."
    );
    // Exactly at the limit is read (and then refused as the malformed JSON it is).
    let resp = client
        .send(
            "POST",
            "/indexes/m/documents",
            &[("content-type", "application/json")],
            &[b'x'; 100],
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["code"], "malformed_payload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_keys_are_checked_by_the_nodes() {
    let key = "master-key-for-tests-0123456789";
    let (nodes, gw) = fleet(Some(key)).await;
    let bearer = format!("Bearer {key}");
    let mut client = Client::new(gw.addr);

    // Proxied: the node itself refuses, with its own body.
    let resp = client.get("/version").await.unwrap();
    assert_eq!(resp.status, 401);
    assert_eq!(resp.json()["code"], "missing_authorization_header");
    let resp = client
        .send("GET", "/version", &[("authorization", "Bearer wrong")], b"")
        .await
        .unwrap();
    assert_eq!(resp.status, 403);
    assert_eq!(resp.json()["code"], "invalid_api_key");
    let resp = client
        .send("GET", "/version", &[("authorization", &bearer)], b"")
        .await
        .unwrap();
    assert_eq!(resp.status, 200);

    // Gateway-owned: the gateway asks a node about the key before answering.
    let resp = client
        .send("GET", "/tasks/0", &[("authorization", "Bearer wrong")], b"")
        .await
        .unwrap();
    assert_eq!(resp.status, 403);
    assert_eq!(resp.json()["message"], "The provided API key is invalid.");
    let resp = client.get("/tasks/0").await.unwrap();
    assert_eq!(resp.status, 401);
    let resp = client
        .send("GET", "/tasks/0", &[("authorization", &bearer)], b"")
        .await
        .unwrap();
    assert_eq!(
        (resp.status, resp.json()["code"].clone()),
        (404, "task_not_found".into())
    );
    // The verdict is cached: a second call does not probe again.
    let probes = || {
        nodes
            .iter()
            .map(|n| n.received("/tasks").len())
            .sum::<usize>()
    };
    let before = probes();
    let resp = client
        .send("GET", "/tasks/0", &[("authorization", &bearer)], b"")
        .await
        .unwrap();
    assert_eq!(resp.status, 404);
    assert_eq!(probes(), before);
    // `GET /tasks` is validated, key included, by a node.
    let resp = client
        .send("GET", "/tasks", &[("authorization", "Bearer wrong")], b"")
        .await
        .unwrap();
    assert_eq!(resp.status, 403);
    let resp = client
        .send("GET", "/tasks", &[("authorization", &bearer)], b"")
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["total"], 0);
    // /health stays public, as on Meilisearch.
    assert_eq!(client.get("/health").await.unwrap().status, 200);
    // The gateway's health checks need no key.
    assert!(nodes.iter().all(|n| !n.received("/health").is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_node_is_skipped_and_reported_by_health() {
    let (nodes, gw) = fleet(None).await;
    let mut client = Client::new(gw.addr);
    nodes[1].stop();
    // Requests keep succeeding even before the health check notices.
    for _ in 0..9 {
        let resp = client.get("/version").await.unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    let reported = eventually(Duration::from_secs(5), || async {
        let resp = request(gw.addr, "GET", "/health", &[], b"").await.unwrap();
        resp.status == 503 && resp.text().contains("`n2`")
    })
    .await;
    assert!(reported, "health never reported n2; log:\n{}", gw.log());
    let resp = request(gw.addr, "GET", "/health", &[], b"").await.unwrap();
    let body = resp.json();
    assert_eq!(body["code"], "miroir_shards_unavailable");
    assert_eq!(resp.header("retry-after"), Some("10"));
    assert!(gw
        .metrics()
        .await
        .contains(r#"miroir_node_up{node="n2"} 0"#));

    // Back on the same address: healthy again.
    let _back = FakeNode::start_at("n2", None, nodes[1].addr).await;
    let recovered = eventually(Duration::from_secs(5), || async {
        request(gw.addr, "GET", "/health", &[], b"")
            .await
            .unwrap()
            .status
            == 200
    })
    .await;
    assert!(recovered);
}

/// A proxied request that fails is answered as a node's error would be, and the gateway,
/// which closes the connection after such an answer, says so: a client's next request on
/// it would otherwise meet a closed socket (a POST cannot be sent again blindly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_proxy_answer_closes_the_connection_openly() {
    // A node that hangs up on every connection: its health checks and proxied requests fail.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            drop(conn);
        }
    });
    let entries = [NodeEntry::new("n1", &format!("http://{addr}"), "a")];
    let gw = GatewayProcess::start(&entries, &Extra::default(), &[]).await;
    let mut client = Client::new(gw.addr);
    for _ in 0..3 {
        let resp = client.get("/version").await.unwrap();
        assert!(resp.status >= 500, "{} {}", resp.status, resp.text());
        assert!(resp.json()["code"].is_string(), "{}", resp.text());
        assert_eq!(
            resp.header("connection"),
            Some("close"),
            "{:?}",
            resp.headers
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_counted_in_metrics() {
    let (_nodes, gw) = fleet(None).await;
    let mut client = Client::new(gw.addr);
    for _ in 0..3 {
        assert_eq!(client.get("/version").await.unwrap().status, 200);
    }
    client.get("/nope").await.unwrap();
    client.send("GET", "/metrics", &[], b"").await.unwrap();
    // Metrics are updated in the logging phase, just after the response is sent.
    let want = [
        r#"miroir_requests_total{class="one_node",method="GET",status="200"} 3"#,
        r#"miroir_requests_total{class="unknown",method="GET",status="404"} 1"#,
        r#"miroir_requests_total{class="gateway",method="GET",status="400"} 1"#,
        r#"miroir_request_duration_seconds_count{class="one_node"} 3"#,
        "miroir_requests_in_flight 0",
        r#"miroir_node_up{node="n1"} 1"#,
        "miroir_topology_generation 1",
    ];
    let all_there = eventually(Duration::from_secs(3), || async {
        let text = gw.metrics().await;
        want.iter().all(|w| text.contains(w))
    })
    .await;
    assert!(all_there, "{}", gw.metrics().await);
    // The exposition passes Prometheus' own linter.
    match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            use std::io::Write;
            let text = gw.metrics().await;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "promtool check metrics:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(_) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "\n*** SKIPPED promtool check metrics: promtool not found (apt-get install prometheus) ***\n");
        }
    }
    assert!(gw
        .metrics()
        .await
        .contains(r#"miroir_node_requests_total{node="n1",outcome="ok"}"#));
    // The access log names the class, status and request id.
    let log = gw.log();
    assert!(
        log.lines()
            .any(|l| l.contains("method=GET path=/version class=one_node")
                && l.contains("status=200")
                && l.contains("request_id=")),
        "{log}"
    );
}
