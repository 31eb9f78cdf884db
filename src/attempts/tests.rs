//! The read engine on scripted nodes and a paused clock: which nodes are asked, failover,
//! hedging (winner and loser), the deadline, and one-node reads.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::*;
use crate::transport::scripted::{Step, TestFleet};

/// A shard read whose request body names the target's shards (echoed back by default).
fn shard_read<'s>(request: &'s (dyn Fn(&Target) -> NodeRequest + Sync)) -> Spread<'s> {
    Spread {
        units: 8,
        by_shard: true,
        max_failovers: 2,
        request,
        judge: |s| match s {
            200 => Verdict::Take,
            s if s < 500 => Verdict::Stop,
            _ => Verdict::Retry,
        },
    }
}

fn naming_shards(target: &Target) -> NodeRequest {
    let mut req = NodeRequest::get("/read");
    req.body = Bytes::from(serde_json::to_vec(&target.shards).unwrap());
    req
}

/// The shards each answer covers, sorted; panics on an answer that is not an echo.
fn covered(answers: &[(NodeIdx, NodeResponse)]) -> Vec<u32> {
    let mut shards: Vec<u32> = answers
        .iter()
        .flat_map(|(_, r)| serde_json::from_slice::<Vec<u32>>(&r.body).unwrap())
        .collect();
    shards.sort();
    shards
}

fn all_shards() -> Vec<u32> {
    (0..8).collect()
}

#[tokio::test(start_paused = true)]
async fn every_shard_once_from_the_first_group_when_all_is_well() {
    let t = TestFleet::new(&["a", "b"], 2, 8, Some(100));
    let topology = t.fleet.topology.snapshot();
    let cluster = t.fleet.cluster(&topology);
    let answers = run(&cluster, &shard_read(&naming_shards)).await.unwrap();
    assert_eq!(covered(&answers), all_shards());
    let mut asked = t.nodes.asked();
    asked.sort();
    // Ties go to group order, and each node of group a answers for all it holds: no filter.
    assert_eq!(asked, ["a0", "a1"]);
    assert!(t
        .nodes
        .received()
        .iter()
        .all(|r| !r.request.body.is_empty()));
}

#[tokio::test(start_paused = true)]
async fn a_node_failing_mid_read_hands_its_shards_to_the_replica() {
    let t = TestFleet::new(&["a", "b"], 2, 8, None);
    t.nodes.script("a0", vec![Step::refuse()], Step::refuse());
    let topology = t.fleet.topology.snapshot();
    let cluster = t.fleet.cluster(&topology);
    let answers = run(&cluster, &shard_read(&naming_shards)).await.unwrap();
    assert_eq!(covered(&answers), all_shards());
    let nodes: Vec<&str> = answers
        .iter()
        .map(|(n, _)| topology.nodes[*n].id.as_str())
        .collect();
    assert!(!nodes.contains(&"a0"));
    // The replica answering for a0's shards only is asked with a shard filter.
    let a0 = topology.node_by_id("a0").unwrap();
    let a0_shards: Vec<u32> = all_shards()
        .into_iter()
        .filter(|&s| topology.owners(s).contains(&a0))
        .collect();
    let to_b: Vec<u32> = answers
        .iter()
        .filter(|(n, _)| topology.nodes[*n].group == topology.nodes[a0].group + 1)
        .flat_map(|(_, r)| serde_json::from_slice::<Vec<u32>>(&r.body).unwrap())
        .collect();
    let mut to_b = to_b;
    to_b.sort();
    assert_eq!(to_b, a0_shards);
}

#[tokio::test(start_paused = true)]
async fn a_503_then_success_is_retried_elsewhere_and_counted_once() {
    let t = TestFleet::new(&["a", "b"], 1, 8, None);
    let busy = r#"{"code":"too_many_search_requests"}"#;
    t.nodes
        .script("a0", vec![Step::status(503, busy)], Step::ok_after(1));
    let topology = t.fleet.topology.snapshot();
    let cluster = t.fleet.cluster(&topology);
    let answers = run(&cluster, &shard_read(&naming_shards)).await.unwrap();
    assert_eq!(covered(&answers), all_shards());
    assert_eq!(t.nodes.asked(), ["a0", "b0"]);
    // The next read finds a0 well again.
    let answers = run(&cluster, &shard_read(&naming_shards)).await.unwrap();
    assert_eq!(covered(&answers), all_shards());
}

#[tokio::test(start_paused = true)]
async fn a_slow_node_is_hedged_and_the_hedge_wins() {
    let t = TestFleet::new(&["a", "b"], 1, 8, Some(100));
    t.nodes.script("a0", vec![], Step::ok_after(5_000));
    t.nodes.script("b0", vec![], Step::ok_after(10));
    let topology = t.fleet.topology.snapshot();
    let cluster = t.fleet.cluster(&topology);
    let started = Instant::now();
    let answers = run(&cluster, &shard_read(&naming_shards)).await.unwrap();
    assert_eq!(covered(&answers), all_shards());
    assert_eq!(started.elapsed(), Duration::from_millis(110));
    assert_eq!(t.nodes.asked(), ["a0", "b0"]);
    assert_eq!(t.fleet.metrics.hedges.get(), 1);
    assert_eq!(t.fleet.metrics.hedge_wins.get(), 1);
    // The loser is cancelled, its wait counted against it: the next read starts on b0.
    let a0 = &topology.nodes[topology.node_by_id("a0").unwrap()];
    assert!(t.fleet.health.latency(a0) >= 0.1);
    assert_eq!(cluster.transport.in_flight(a0), 0);
    run(&cluster, &shard_read(&naming_shards)).await.unwrap();
    assert_eq!(t.nodes.asked()[2], "b0");
}

#[tokio::test(start_paused = true)]
async fn a_slower_hedge_loses_to_the_first_answer() {
    let t = TestFleet::new(&["a", "b"], 1, 8, Some(100));
    t.nodes.script("a0", vec![], Step::ok_after(300));
    t.nodes.script("b0", vec![], Step::ok_after(1_000));
    let topology = t.fleet.topology.snapshot();
    let cluster = t.fleet.cluster(&topology);
    let started = Instant::now();
    let answers = run(&cluster, &shard_read(&naming_shards)).await.unwrap();
    assert_eq!(answers.len(), 1);
    assert_eq!(topology.nodes[answers[0].0].id, "a0");
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    assert_eq!(t.fleet.metrics.hedges.get(), 1);
    assert_eq!(t.fleet.metrics.hedge_wins.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn no_answer_within_the_deadline_fails_the_read() {
    let mut t = TestFleet::new(&["a", "b"], 1, 8, Some(100));
    t.fleet.reads.deadline = Duration::from_millis(400);
    t.nodes.script("a0", vec![], Step::ok_after(60_000));
    t.nodes.script("b0", vec![], Step::ok_after(60_000));
    let topology = t.fleet.topology.snapshot();
    let cluster = t.fleet.cluster(&topology);
    let started = Instant::now();
    let err = run(&cluster, &shard_read(&naming_shards))
        .await
        .unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_millis(400));
    match err {
        ReadError::Unavailable {
            units,
            reasons,
            last,
        } => {
            assert_eq!(units, all_shards());
            assert!(reasons[0].contains("deadline of 400 ms"));
            assert_eq!(last, Some(NodeError::Timeout));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn shards_whose_owners_all_fail_make_the_read_unavailable() {
    let t = TestFleet::new(&["a", "b"], 1, 8, None);
    t.nodes.script("a0", vec![], Step::refuse());
    t.nodes.script(
        "b0",
        vec![],
        Step::status(502, r#"{"message":"bad gateway"}"#),
    );
    let topology = t.fleet.topology.snapshot();
    let cluster = t.fleet.cluster(&topology);
    match run(&cluster, &shard_read(&naming_shards)).await {
        Err(ReadError::Unavailable { units, reasons, .. }) => {
            assert_eq!(units, all_shards());
            assert_eq!(reasons.len(), 2, "{reasons:?}");
            assert!(reasons.iter().any(|r| r.contains("`b0` answered 502")));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_client_error_is_the_answer_to_the_whole_read() {
    let t = TestFleet::new(&["a"], 2, 8, None);
    let error = r#"{"code":"invalid_search_filter"}"#;
    t.nodes.script("a0", vec![], Step::status(400, error));
    t.nodes.script("a1", vec![], Step::ok_after(50));
    let topology = t.fleet.topology.snapshot();
    let cluster = t.fleet.cluster(&topology);
    match run(&cluster, &shard_read(&naming_shards)).await {
        Err(ReadError::Stopped(node, resp)) => {
            assert_eq!(topology.nodes[node].id, "a0");
            assert_eq!(resp.status, 400);
            assert_eq!(&resp.body[..], error.as_bytes());
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn one_node_reads_take_the_first_node_that_answers() {
    let t = TestFleet::new(&["a"], 3, 8, None);
    t.nodes
        .script("a0", vec![Step::refuse()], Step::ok_after(0));
    t.nodes.script(
        "a1",
        vec![],
        Step::status(404, r#"{"code":"index_not_found"}"#),
    );
    let topology = t.fleet.topology.snapshot();
    let cluster = t.fleet.cluster(&topology);
    let (node, resp) = cluster.send_any(&NodeRequest::get("/x")).await.unwrap();
    // Any status is an answer; a refused connection is not.
    assert_eq!(topology.nodes[node].id, "a1");
    assert_eq!(resp.status, 404);
    assert_eq!(t.nodes.asked(), ["a0", "a1"]);

    for id in ["a0", "a1", "a2"] {
        t.nodes.script(id, vec![], Step::refuse());
    }
    let err = cluster.send_any(&NodeRequest::get("/x")).await.unwrap_err();
    assert!(matches!(err, NodeError::Connect(_)));
}

#[tokio::test(start_paused = true)]
async fn one_node_reads_hedge_a_slow_node() {
    let t = TestFleet::new(&["a"], 2, 8, Some(50));
    t.nodes.script("a0", vec![], Step::ok_after(2_000));
    t.nodes.script("a1", vec![], Step::ok_after(5));
    let topology = t.fleet.topology.snapshot();
    let cluster = t.fleet.cluster(&topology);
    let started = Instant::now();
    let (node, _) = cluster.send_any(&NodeRequest::get("/x")).await.unwrap();
    assert_eq!(topology.nodes[node].id, "a1");
    assert_eq!(started.elapsed(), Duration::from_millis(55));
    assert_eq!(t.fleet.metrics.hedge_wins.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_lagging_node_is_passed_over_while_a_replica_can_answer() {
    let t = TestFleet::new(&["a", "b"], 2, 8, None);
    t.fleet.health.set_lagging(["a0".to_string()].into());
    let topology = t.fleet.topology.snapshot();
    let cluster = t.fleet.cluster(&topology);
    let answers = run(&cluster, &shard_read(&naming_shards)).await.unwrap();
    assert_eq!(covered(&answers), all_shards());
    assert!(!t.nodes.asked().contains(&"a0".to_string()));
    // ... but it still answers when its replica fails.
    for id in ["b0", "b1"] {
        t.nodes.script(id, vec![], Step::refuse());
    }
    let answers = run(&cluster, &shard_read(&naming_shards)).await.unwrap();
    assert_eq!(covered(&answers), all_shards());
    assert!(t.nodes.asked().contains(&"a0".to_string()));
}
