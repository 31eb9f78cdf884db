//! Pingora's graceful upgrade under load: a new process started with `-u` takes the
//! listening sockets, the old one gets SIGQUIT and finishes its requests; clients reading and
//! writing all along see no failure.

use crate::support;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::fake_node::FakeNode;
use support::gateway::{Extra, GatewayProcess, NodeEntry};
use support::http::{request, Client};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graceful_upgrade_drops_no_request() {
    let nodes = FakeNode::three(None).await;
    let entries = NodeEntry::for_fakes(&nodes);
    let mut old = GatewayProcess::start(&entries, &Extra::default(), &[]).await;
    let addr = old.addr;

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for i in 0..4 {
        let (stop, sent, failures) = (stop.clone(), sent.clone(), failures.clone());
        clients.push(tokio::spawn(async move {
            let mut client = Client::new(addr);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let outcome = match i {
                    // Reads on kept-alive connections.
                    0 => client.get("/version").await,
                    1 => client.get("/tasks?limit=2").await,
                    2 => client.get("/health").await,
                    // Writes, each on a new connection.
                    _ => {
                        let body = format!(r#"[{{"id": {n}, "v": "x"}}]"#);
                        request(
                            addr,
                            "POST",
                            "/indexes/up/documents",
                            &[("content-type", "application/json")],
                            body.as_bytes(),
                        )
                        .await
                    }
                };
                match outcome {
                    Ok(r) if r.status == 200 || r.status == 202 => {}
                    Ok(r) => failures.lock().unwrap().push(format!(
                        "client {i}: {} {}",
                        r.status,
                        r.text()
                    )),
                    Err(e) => failures.lock().unwrap().push(format!("client {i}: {e}")),
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    // An alias, to be read by the new process from the store the old one releases.
    let alias = br#"{"name": "upa", "targets": ["up"]}"#;
    let ct = [("content-type", "application/json")];
    let created = request(addr, "POST", "/_miroir/aliases", &ct, alias)
        .await
        .unwrap();
    assert_eq!(created.status, 201, "{}", created.text());

    // The new process waits for the sockets; the old one hands them over on SIGQUIT.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(old.dir.0.join("new.log"))
        .unwrap();
    let mut new = Command::new(env!("CARGO_BIN_EXE_miroir"))
        .arg("--config")
        .arg(&old.config_path)
        .arg("-u")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let upgraded_at = Instant::now();
    old.signal(libc::SIGQUIT);
    let deadline = Instant::now() + Duration::from_secs(20);
    while old.alive() {
        assert!(Instant::now() < deadline, "the old process did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let handover = upgraded_at.elapsed();
    let old_status = old.child.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    assert!(
        matches!(new.try_wait(), Ok(None)),
        "the new process died:\n{}",
        std::fs::read_to_string(old.dir.0.join("new.log")).unwrap_or_default()
    );
    // The new process serves.
    let after = request(addr, "GET", "/version", &[], b"").await.unwrap();
    assert_eq!(after.status, 200);
    let through_alias = request(addr, "POST", "/indexes/upa/search", &ct, b"{}")
        .await
        .unwrap();
    assert_eq!(through_alias.status, 200, "{}", through_alias.text());
    let total = sent.load(Ordering::Relaxed);
    let failed = failures.lock().unwrap().clone();
    eprintln!(
        "upgrade test: {total} requests, {} failed; the old process left {:?} after SIGQUIT ({old_status})",
        failed.len(),
        handover
    );
    let _ = new.kill();
    let _ = new.wait();
    assert!(
        failed.is_empty(),
        "{} of {total} requests failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(10)]
    );
    assert!(total > 100);
    // Every acknowledged write reached the nodes.
    let stored: usize = nodes.iter().map(|n| n.documents("up").len()).sum();
    assert!(stored > 0);
}
