//! Hinted handoff: the writes a node misses while it is down reach it, in order, once it is
//! back, so every replica ends with exactly the documents it owns (test nodes; with real
//! Meilisearch too when available).

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{json, Value};
use support::fake_node::FakeNode;
use support::gateway::{eventually, Extra, GatewayProcess, NodeEntry};
use support::meili_api::Api;

/// Documents `ids`, with a title saying which `version` of them this is.
fn batch(ids: std::ops::Range<u32>, version: &str) -> Vec<u8> {
    let docs: Vec<Value> = ids
        .map(|i| json!({"id": i, "title": format!("document {i} {version}")}))
        .collect();
    Value::from(docs).to_string().into_bytes()
}

/// Checks that the nodes of each group split `expected` between them, each document on
/// exactly one, with the expected content and the same insertion order in every group.
fn assert_converged(groups: &[Vec<BTreeMap<String, Value>>], expected: &BTreeMap<String, Value>) {
    let mut orders: BTreeMap<String, Value> = BTreeMap::new();
    for (g, nodes) in groups.iter().enumerate() {
        let mut union = BTreeMap::new();
        for docs in nodes {
            for (id, doc) in docs {
                assert!(
                    union.insert(id.clone(), doc.clone()).is_none(),
                    "document {id} twice in group {g}"
                );
            }
        }
        let missing: Vec<&String> = expected
            .keys()
            .filter(|k| !union.contains_key(*k))
            .collect();
        let extra: Vec<&String> = union
            .keys()
            .filter(|k| !expected.contains_key(*k))
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "group {g}: {} missing (e.g. {:?}), {} extra (e.g. {:?})",
            missing.len(),
            missing.first(),
            extra.len(),
            extra.first()
        );
        for (id, doc) in &union {
            let mut doc = doc.clone();
            doc.as_object_mut().map(|d| d.remove("_miroir_shard"));
            let order = doc.as_object_mut().and_then(|d| d.remove("_miroir_order"));
            let first = orders
                .entry(id.clone())
                .or_insert(order.clone().unwrap_or_default());
            assert_eq!(Some(&*first), order.as_ref(), "order of {id} in group {g}");
            assert_eq!(doc, expected[id], "document {id} in group {g}");
        }
    }
}

/// The writes of the scenario, in order: batches of new documents, with node `a1` down from
/// batch `down_at` until batch `up_at`; during the outage some documents are rewritten and
/// some deleted, so replaying out of order would show.
struct Scenario {
    batches: u32,
    per_batch: u32,
    down_at: u32,
    up_at: u32,
}

impl Scenario {
    /// The documents the index must end with.
    fn expected(&self) -> BTreeMap<String, Value> {
        let mut docs = BTreeMap::new();
        for i in 0..self.batches * self.per_batch {
            docs.insert(
                i.to_string(),
                json!({"id": i, "title": format!("document {i} v1")}),
            );
        }
        for i in self.rewritten() {
            docs.insert(
                i.to_string(),
                json!({"id": i, "title": format!("document {i} v3")}),
            );
        }
        for i in self.deleted() {
            docs.remove(&i.to_string());
        }
        docs
    }

    fn rewritten(&self) -> std::ops::Range<u32> {
        0..self.per_batch
    }

    fn deleted(&self) -> Vec<u32> {
        (self.per_batch..2 * self.per_batch).step_by(3).collect()
    }

    /// Runs the writes; `outage(true)` takes node `a1` out, `outage(false)` brings it back.
    /// The node goes down while batch `down_at` is on its way: that batch's task may wait
    /// for the node to come back, so it is checked last.
    async fn run(&self, api: &mut Api, mut outage: impl AsyncFnMut(bool)) {
        let mut interrupted = None;
        for b in 0..self.batches {
            if b == self.up_at {
                outage(false).await;
            }
            let ids = b * self.per_batch..(b + 1) * self.per_batch;
            let body = batch(ids, "v1");
            let send = api.call(
                "POST",
                "/indexes/f/documents",
                Some("application/json"),
                &body,
            );
            if b == self.down_at {
                let (resp, ()) = tokio::join!(send, async {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                    outage(true).await
                });
                assert_eq!(resp.status, 202, "{}", resp.text());
                interrupted = resp.json()["taskUid"].as_u64();
            } else {
                let resp = send.await;
                assert_eq!(resp.status, 202, "batch {b}: {}", resp.text());
                let t = api.wait(resp.json()["taskUid"].as_u64().unwrap()).await;
                assert_eq!(t["status"], "succeeded", "batch {b}: {t}");
            }
            if b == self.down_at {
                // While a1 is away: two versions of the same documents, then deletions.
                for version in ["v2", "v3"] {
                    let t = api
                        .write(
                            "POST",
                            "/indexes/f/documents",
                            Some("application/json"),
                            &batch(self.rewritten(), version),
                        )
                        .await;
                    assert_eq!(t["status"], "succeeded", "{t}");
                }
                let t = api
                    .write(
                        "POST",
                        "/indexes/f/documents/delete-batch",
                        Some("application/json"),
                        json!(self.deleted()).to_string().as_bytes(),
                    )
                    .await;
                assert_eq!(t["status"], "succeeded", "{t}");
            }
        }
        let t = api.wait(interrupted.expect("a task uid")).await;
        assert_eq!(t["status"], "succeeded", "the interrupted batch: {t}");
    }
}

async fn hints_drained(gw: &GatewayProcess, node: &str) -> bool {
    gw.metric(&format!("miroir_hints_pending{{node=\"{node}\"}}"))
        .await
        == Some(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_down_during_ingest_catches_up() {
    let mut nodes = Vec::new();
    for name in ["a1", "a2", "b1", "b2"] {
        nodes.push(FakeNode::start(name, None).await);
    }
    let entries: Vec<NodeEntry> = nodes
        .iter()
        .map(|n| NodeEntry::new(&n.name, &n.url(), &n.name[..1]))
        .collect();
    let gw = GatewayProcess::start(&entries, &Extra::default(), &[]).await;
    let mut api = Api::new(gw.addr, None);
    let scenario = Scenario {
        batches: 20,
        per_batch: 100,
        down_at: 5,
        up_at: 12,
    };
    let a1 = &mut nodes[0];
    let gw_ref = &gw;
    scenario
        .run(&mut api, async |down| {
            if down {
                a1.stop()
            } else {
                let kept = eventually(Duration::from_secs(5), async || {
                    gw_ref.metric("miroir_hints_pending{node=\"a1\"}").await > Some(0.0)
                });
                assert!(kept.await, "writes a1 missed are kept");
                a1.restart().await
            }
        })
        .await;
    assert!(
        gw.metric("miroir_hints_pending{node=\"a1\"}")
            .await
            .is_some(),
        "the gauge is published"
    );
    assert!(
        eventually(Duration::from_secs(20), || hints_drained(&gw, "a1")).await,
        "a1 never caught up:\n{}",
        gw.log()
    );
    let groups = vec![
        vec![nodes[0].documents("f"), nodes[1].documents("f")],
        vec![nodes[2].documents("f"), nodes[3].documents("f")],
    ];
    assert_converged(&groups, &scenario.expected());
    // a1 holds documents written only while it was down.
    let outage: BTreeSet<String> = (scenario.down_at * 100..scenario.up_at * 100)
        .map(|i| i.to_string())
        .collect();
    assert!(nodes[0].documents("f").keys().any(|k| outage.contains(k)));

    // Searches see every document once.
    let resp = api
        .json("POST", "/indexes/f/search", &json!({"q": ""}))
        .await;
    assert_eq!(
        resp.json()["estimatedTotalHits"],
        scenario.expected().len(),
        "{}",
        resp.text()
    );
}

mod real {
    //! The same with real Meilisearch nodes, one killed with SIGKILL mid-ingest and
    //! restarted on its database.

    use super::*;
    use support::meili::{self, MeiliNode};

    const KEY: &str = "miroir-handoff-key-0123456789";

    /// The node's documents once it has processed every task it holds.
    async fn node_documents(node: &MeiliNode) -> BTreeMap<String, Value> {
        let mut api = Api::new(node.addr, Some(KEY));
        let idle = eventually(Duration::from_secs(120), async || {
            let resp = api.get("/tasks?statuses=enqueued,processing&limit=1").await;
            resp.status == 200 && resp.json()["total"] == 0
        });
        assert!(idle.await, "node {} never finished its tasks", node.url());
        let resp = api.get("/indexes/f/documents?limit=100000").await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        resp.json()["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|d| (d["id"].to_string(), d.clone()))
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_real_node_killed_during_ingest_catches_up() {
        let Some(bin) = meili::binary() else {
            meili::skip_notice("a_real_node_killed_during_ingest_catches_up");
            return;
        };
        let mut nodes = Vec::new();
        for _ in 0..4 {
            nodes.push(MeiliNode::start(&bin, KEY).await);
        }
        let groups = ["a", "a", "b", "b"];
        let entries: Vec<NodeEntry> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| NodeEntry::new(&format!("m{i}"), &n.url(), groups[i]))
            .collect();
        let gw =
            GatewayProcess::start(&entries, &Extra::default(), &[("MIROIR_MASTER_KEY", KEY)]).await;
        let mut api = Api::new(gw.addr, Some(KEY));
        let scenario = Scenario {
            batches: 20,
            per_batch: 1000,
            down_at: 6,
            up_at: 13,
        };
        let started = std::time::Instant::now();
        let m0 = &mut nodes[0];
        let gw_ref = &gw;
        scenario
            .run(&mut api, async |down| {
                if down {
                    m0.kill()
                } else {
                    let pending = gw_ref.metric("miroir_hints_pending{node=\"m0\"}").await;
                    eprintln!("m0 restarted with {pending:?} writes to catch up on");
                    assert!(pending > Some(0.0));
                    m0.restart().await
                }
            })
            .await;
        assert!(
            eventually(Duration::from_secs(60), || hints_drained(&gw, "m0")).await,
            "m0 never caught up:\n{}",
            gw.log()
        );
        let mut docs = Vec::new();
        for node in &nodes {
            docs.push(node_documents(node).await);
        }
        eprintln!(
            "handoff (real Meilisearch): 20 batches of 1000, m0 killed for 7 of them; \
             converged in {:?}; documents per node {:?}",
            started.elapsed(),
            docs.iter().map(BTreeMap::len).collect::<Vec<_>>()
        );
        let groups = vec![docs[..2].to_vec(), docs[2..].to_vec()];
        assert_converged(&groups, &scenario.expected());
        let resp = api
            .json("POST", "/indexes/f/search", &json!({"q": ""}))
            .await;
        assert_eq!(
            resp.json()["estimatedTotalHits"],
            scenario.expected().len(),
            "{}",
            resp.text()
        );
    }
}
