//! Topology reload on SIGHUP under continuous load: valid files swap in, invalid ones are
//! refused and the old topology stays, and no request fails meanwhile.

use crate::support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::fake_node::FakeNode;
use support::gateway::{eventually, Extra, GatewayProcess, NodeEntry};
use support::http::Client;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sighup_reloads_swap_or_keep_the_topology_without_failing_requests() {
    let mut nodes = Vec::new();
    for name in ["n1", "n2", "n3"] {
        nodes.push(FakeNode::start(name, None).await);
    }
    let two: Vec<NodeEntry> = nodes[..2]
        .iter()
        .map(|n| NodeEntry::new(&n.name, &n.url(), "a"))
        .collect();
    let three: Vec<NodeEntry> = nodes
        .iter()
        .map(|n| NodeEntry::new(&n.name, &n.url(), "a"))
        .collect();
    let gw = GatewayProcess::start(&two, &Extra::default(), &[]).await;

    // Clients hammer one-node and gateway routes on kept-alive connections.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for i in 0..4 {
        let (stop, sent, failures, addr) = (stop.clone(), sent.clone(), failures.clone(), gw.addr);
        clients.push(tokio::spawn(async move {
            let mut client = Client::new(addr);
            let path = if i % 2 == 0 { "/version" } else { "/health" };
            while !stop.load(Ordering::Relaxed) {
                match client.get(path).await {
                    Ok(resp) if resp.status == 200 => {}
                    Ok(resp) => failures.lock().unwrap().push(format!(
                        "{path}: {} {}",
                        resp.status,
                        resp.text()
                    )),
                    Err(e) => failures.lock().unwrap().push(format!("{path}: {e}")),
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    let invalid = "[cluster]\nshards = 16\nreplication_factor = 1\nunknown_key = 1\n";
    let mut reloads = 0;
    let mut refused = 0;
    for round in 0..8 {
        // valid (3 nodes) → invalid → valid (2 nodes): 24 reloads in all.
        // Shard moves publish topologies of their own: a reload shows as a newer one.
        let before = gw.metric("miroir_topology_generation").await.unwrap();
        gw.write_config(&three, &Extra::default());
        gw.sighup();
        reloads += 1;
        assert!(
            eventually(Duration::from_secs(5), || async {
                gw.metric("miroir_topology_generation").await > Some(before)
            })
            .await,
            "round {round}: generation never passed {before}; log:\n{}",
            gw.log()
        );
        assert!(
            eventually(Duration::from_secs(5), || async {
                gw.metrics()
                    .await
                    .contains(r#"miroir_node_up{node="n3"} 1"#)
            })
            .await,
            "n3 never joined"
        );

        gw.write_raw_config(invalid);
        gw.sighup();
        reloads += 1;
        refused += 1;
        let want = refused as f64;
        assert!(
            eventually(Duration::from_secs(5), || async {
                gw.metric(r#"miroir_topology_reloads_total{result="error"}"#)
                    .await
                    == Some(want)
            })
            .await,
            "the invalid file was not counted"
        );
        assert!(
            gw.metrics()
                .await
                .contains(r#"miroir_node_up{node="n3"} 1"#),
            "an invalid file changed the topology"
        );

        let before = gw.metric("miroir_topology_generation").await.unwrap();
        gw.write_config(&two, &Extra::default());
        gw.sighup();
        reloads += 1;
        assert!(
            eventually(Duration::from_secs(5), || async {
                gw.metric("miroir_topology_generation").await > Some(before)
            })
            .await,
            "round {round}: back to two nodes never happened"
        );
        // n3 leaves once its shards have moved back.
        assert!(
            eventually(Duration::from_secs(30), || async {
                !gw.metrics().await.contains(r#"miroir_node_up{node="n3""#)
            })
            .await,
            "n3 never left"
        );
    }
    assert!(reloads >= 20);
    // n3 served traffic while it was in the topology, nothing after it left.
    let n3_before = nodes[2].received("/version").len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let total = sent.load(Ordering::Relaxed);
    let failed = failures.lock().unwrap().clone();
    eprintln!(
        "reload test: {reloads} reloads ({refused} refused), {total} requests, {} failed",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {total} requests failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(10)]
    );
    assert!(total > 100, "the clients barely ran: {total}");
    assert!(
        n3_before > 0,
        "n3 never served a request while in the topology"
    );
    assert_eq!(
        nodes[2].received("/version").len(),
        n3_before,
        "n3 still got traffic after it left"
    );
    assert_eq!(
        gw.metric(r#"miroir_topology_reloads_total{result="success"}"#)
            .await,
        Some((reloads - refused) as f64)
    );
    let log = gw.log();
    assert!(
        log.contains("unknown field `unknown_key`"),
        "the refusal reason is logged:\n{log}"
    );
}
