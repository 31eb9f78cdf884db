//! Writes on scripted nodes: the quorum rule on both sides, the degraded header, and the
//! missed writes replayed in order once the node answers again (hinted handoff).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method};

use super::{dispatch, IndexCache, Request, Services};
use crate::auth::AuthChecker;
use crate::routes::{self, Op};
use crate::tasks::TaskService;
use crate::transport::scripted::{Step, TestFleet};

const ENQUEUED: &str = r#"{"taskUid":7,"indexUid":"m","status":"enqueued","type":"documentDeletion","enqueuedAt":"2026-01-01T00:00:00Z"}"#;

fn scratch() -> std::path::PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "miroir-write-tests-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn services_in(dir: &std::path::Path) -> Services {
    let tasks = Arc::new(TaskService::open(dir).unwrap());
    let metrics = crate::metrics::Metrics::new();
    Services {
        aliases: Arc::new(crate::aliases::AliasService::new(
            tasks.clone(),
            10,
            &metrics,
        )),
        keys: Arc::new(crate::keys::KeySync::new(tasks.clone(), &metrics)),
        webhooks: Arc::new(crate::webhooks::Webhooks::new(tasks.clone(), &metrics)),
        tasks,
        indexes: IndexCache::default(),
        auth: AuthChecker::new(crate::auth::DEFAULT_TTL),
        facet_depth: Default::default(),
        order: Default::default(),
        cache: Arc::new(crate::cache::SearchCache::off()),
    }
}

fn services() -> Services {
    services_in(&scratch())
}

/// `DELETE /indexes/m/documents/{id}` through the gateway's write path.
async fn delete(t: &TestFleet, services: &Services, id: &str) -> crate::respond::Reply {
    let path = format!("/indexes/m/documents/{id}");
    send(t, services, Method::DELETE, Op::DeleteDocument, &path, "").await
}

/// A gateway write of `body` (JSON) to `path`; `op` names its operation.
async fn send(
    t: &TestFleet,
    services: &Services,
    method: Method,
    op: Op,
    path: &str,
    body: &str,
) -> crate::respond::Reply {
    let route = routes::classify(&method, path).unwrap();
    let mut headers = HeaderMap::new();
    if !body.is_empty() {
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
    }
    let req = Request {
        method: &method,
        path,
        query: "",
        headers: &headers,
        body: Bytes::from(body.to_string()),
        route: &route,
        upstream_headers: &[],
        received_at: "2026-01-01T00:00:00Z".into(),
    };
    let topology = t.fleet.topology.snapshot();
    let cluster = t.fleet.cluster(&topology);
    dispatch(&cluster, services, op, &req).await
}

fn header<'r>(reply: &'r crate::respond::Reply, name: &str) -> Option<&'r str> {
    reply
        .headers
        .iter()
        .find(|(n, _)| n.as_str() == name)
        .and_then(|(_, v)| v.to_str().ok())
}

#[tokio::test(start_paused = true)]
async fn one_group_meeting_the_quorum_acknowledges_and_the_miss_is_replayed_in_order() {
    let t = TestFleet::new(&["a", "b"], 1, 8, None);
    let services = services();
    t.nodes.script("a0", vec![], Step::refuse());
    t.nodes.script("b0", vec![], Step::status(202, ENQUEUED));

    for id in ["1", "2"] {
        let reply = delete(&t, &services, id).await;
        assert_eq!(reply.status, 202, "{:?}", reply.body);
        assert_eq!(header(&reply, "x-miroir-degraded"), Some("a0"));
    }
    assert_eq!(services.tasks.hint_counts().get("a0"), Some(&2));
    assert!(services.tasks.is_lagging("a0"));
    // While a0 lags, a new write for it joins its queue instead of overtaking it.
    t.nodes.script("a0", vec![], Step::status(202, ENQUEUED));
    let reply = delete(&t, &services, "3").await;
    assert_eq!(reply.status, 202);
    assert_eq!(services.tasks.hint_counts().get("a0"), Some(&3));
    // a0 was asked once: the first write; the others waited in its queue.
    assert_eq!(t.nodes.asked().iter().filter(|n| *n == "a0").count(), 1);

    // a0 answers again: its queue is replayed oldest first, then it is caught up.
    let topology = t.fleet.topology.snapshot();
    let cluster = t.fleet.cluster(&topology);
    services.tasks.replay_hints(&cluster).await;
    let replayed: Vec<String> = t
        .nodes
        .received()
        .into_iter()
        .filter(|r| r.node == "a0")
        .skip(1)
        .map(|r| r.request.path)
        .collect();
    assert_eq!(
        replayed,
        [
            "/indexes/m/documents/1",
            "/indexes/m/documents/2",
            "/indexes/m/documents/3"
        ]
    );
    assert!(services.tasks.hint_counts().is_empty());
    assert!(!services.tasks.is_lagging("a0"));
}

#[tokio::test(start_paused = true)]
async fn a_write_no_group_acknowledges_fails_with_the_quorum_error() {
    let t = TestFleet::new(&["a", "b"], 1, 8, None);
    let services = services();
    t.nodes.script("a0", vec![], Step::refuse());
    t.nodes.script("b0", vec![], Step::refuse());
    let reply = delete(&t, &services, "1").await;
    assert_eq!(reply.status, 503);
    let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["code"], "miroir_write_quorum_failed");
    assert!(body["message"].as_str().unwrap().contains("`a0`, `b0`"));
    // Nothing was written anywhere: nothing to replay.
    assert!(services.tasks.hint_counts().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_replay_stops_at_the_first_failure_and_resumes_later() {
    let t = TestFleet::new(&["a", "b"], 1, 8, None);
    let services = services();
    t.nodes.script("a0", vec![], Step::refuse());
    t.nodes.script("b0", vec![], Step::status(202, ENQUEUED));
    for id in ["1", "2"] {
        assert_eq!(delete(&t, &services, id).await.status, 202);
    }
    let topology = t.fleet.topology.snapshot();
    let cluster = t.fleet.cluster(&topology);
    // The first replay gets through, the second fails: one hint left, still lagging.
    t.nodes.script(
        "a0",
        vec![Step::status(202, ENQUEUED), Step::refuse()],
        Step::status(202, ENQUEUED),
    );
    services.tasks.replay_hints(&cluster).await;
    assert_eq!(services.tasks.hint_counts().get("a0"), Some(&1));
    assert!(services.tasks.is_lagging("a0"));
    services.tasks.replay_hints(&cluster).await;
    assert!(services.tasks.hint_counts().is_empty());
    let paths: Vec<String> = t
        .nodes
        .received()
        .into_iter()
        .filter(|r| r.node == "a0")
        .map(|r| r.request.path)
        .collect();
    // The first write reached a0 refused; the second was queued behind it unsent.
    assert_eq!(
        paths[1..],
        [
            "/indexes/m/documents/1",
            "/indexes/m/documents/2",
            "/indexes/m/documents/2"
        ]
    );
}

/// A node that takes document batches: `missing_payload` for the gateway's empty probe, an
/// index with primary key `id`, a task for each batch.
fn batch_taking_node() -> Step {
    Step::Reply(std::sync::Arc::new(
        |req: &crate::transport::NodeRequest| {
            if req.method == Method::GET {
                return (200, r#"{"uid":"m","primaryKey":"id"}"#.into());
            }
            if req.body.is_empty() {
                return (
                400,
                r#"{"message":"A json payload is missing.","code":"missing_payload","type":"invalid_request","link":""}"#.into(),
            );
            }
            (202, ENQUEUED.into())
        },
    ))
}

#[tokio::test(start_paused = true)]
async fn a_part_too_large_for_a_node_goes_as_several_requests_in_order() {
    let mut t = TestFleet::new(&["a"], 1, 8, None);
    t.fleet.node_payload_bytes = 120;
    t.nodes.script("a0", vec![], batch_taking_node());
    let services = services();
    let docs: Vec<String> = (0..12)
        .map(|i| format!(r#"{{"id":{i},"title":"document number {i}"}}"#))
        .collect();
    let body = format!("[{}]", docs.join(","));
    let path = "/indexes/m/documents";
    let route = routes::classify(&Method::POST, path).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    let req = Request {
        method: &Method::POST,
        path,
        query: "",
        headers: &headers,
        body: Bytes::from(body),
        route: &route,
        upstream_headers: &[],
        received_at: "2026-01-01T00:00:00Z".into(),
    };
    let topology = t.fleet.topology.snapshot();
    let cluster = t.fleet.cluster(&topology);
    let reply = dispatch(&cluster, &services, Op::AddDocuments, &req).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    let parts: Vec<Vec<serde_json::Value>> = t
        .nodes
        .received()
        .into_iter()
        .filter(|r| r.request.method == Method::POST && !r.request.body.is_empty())
        .filter(|r| !r.request.path.contains("/documents/fetch"))
        .map(|r| {
            assert!(r.request.body.len() <= 120, "{}", r.request.body.len());
            serde_json::from_slice(&r.request.body).unwrap()
        })
        .collect();
    assert!(parts.len() > 2, "{}", parts.len());
    let ids: Vec<u64> = parts
        .iter()
        .flatten()
        .map(|d| d["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, (0..12).collect::<Vec<_>>());
    // One gateway task covers every part's node task.
    let task: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    let stored = services
        .tasks
        .get(task["taskUid"].as_u64().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(stored.node_tasks.len(), parts.len());
}

/// A node answering task queries: every task it was asked about has succeeded.
fn tasks_succeed() -> Step {
    Step::Reply(std::sync::Arc::new(
        |req: &crate::transport::NodeRequest| {
            if req.method == Method::GET && req.path.starts_with("/tasks") {
                return (
                200,
                r#"{"results":[{"uid":7,"status":"succeeded","type":"documentDeletion","details":{"providedIds":1,"deletedDocuments":1},"startedAt":"2026-01-01T00:00:01Z","finishedAt":"2026-01-01T00:00:02Z","enqueuedAt":"2026-01-01T00:00:00Z"}]}"#.into(),
            );
            }
            (202, ENQUEUED.into())
        },
    ))
}

#[tokio::test(start_paused = true)]
async fn a_write_whose_owner_is_down_is_acknowledged_and_finishes_once_the_owner_has_it() {
    // One group, one owner per shard: the owner is down.
    let t = TestFleet::new(&["a"], 2, 8, None);
    let services = services();
    for id in ["a0", "a1"] {
        t.nodes.script(id, vec![], Step::refuse());
    }
    let topology = t.fleet.topology.snapshot();
    let owner = &topology.nodes[topology.owners(crate::routing::shard_of(b"1", 8))[0]].id;
    t.nodes.script(
        if owner == "a0" { "a1" } else { "a0" },
        vec![],
        tasks_succeed(),
    );
    // Nobody took it: refused, nothing queued.
    let reply = delete(&t, &services, "1").await;
    assert_eq!(reply.status, 503);
    assert!(services.tasks.hint_counts().is_empty());

    // A batch delete reaching both nodes, one of them down: acknowledged, queued for it.
    let ids: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    let reply = delete_batch(&t, &services, &ids).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    assert_eq!(header(&reply, "x-miroir-degraded"), Some(owner.as_str()));
    let uid = serde_json::from_slice::<serde_json::Value>(&reply.body).unwrap()["taskUid"]
        .as_u64()
        .unwrap();
    let cluster = t.fleet.cluster(&topology);
    let view = services.tasks.view(&cluster, uid).await.unwrap().unwrap();
    assert_eq!(view["status"], "processing", "{view}");

    // The owner is back: its part is delivered, the task joins its node task and finishes.
    t.nodes.script(owner, vec![], tasks_succeed());
    services.tasks.replay_hints(&cluster).await;
    assert!(services.tasks.hint_counts().is_empty());
    let task = services.tasks.get(uid).unwrap().unwrap();
    assert!(task.awaiting.is_empty());
    let mut nodes: Vec<&str> = task.node_tasks.iter().map(|r| r.node.as_str()).collect();
    nodes.sort();
    assert_eq!(nodes, ["a0", "a1"]);
    let view = services.tasks.view(&cluster, uid).await.unwrap().unwrap();
    assert_eq!(view["status"], "succeeded", "{view}");
}

/// `POST /indexes/m/documents/delete-batch` through the gateway's write path.
async fn delete_batch(t: &TestFleet, services: &Services, ids: &[String]) -> crate::respond::Reply {
    let path = "/indexes/m/documents/delete-batch";
    let route = routes::classify(&Method::POST, path).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    let req = Request {
        method: &Method::POST,
        path,
        query: "",
        headers: &headers,
        body: Bytes::from(serde_json::to_vec(ids).unwrap()),
        route: &route,
        upstream_headers: &[],
        received_at: "2026-01-01T00:00:00Z".into(),
    };
    let topology = t.fleet.topology.snapshot();
    let cluster = t.fleet.cluster(&topology);
    dispatch(&cluster, services, Op::DeleteDocuments, &req).await
}

#[tokio::test(start_paused = true)]
async fn a_write_interrupted_by_a_stop_is_completed_at_the_next_start() {
    use crate::tasks::intent::{Intent, WriteMeta};
    let dir = scratch();
    let t = TestFleet::new(&["a"], 2, 8, None);
    {
        let services = services_in(&dir);
        let intent = Intent {
            meta: WriteMeta {
                kind: "documentAdditionOrUpdate".into(),
                index_uid: Some("m".into()),
                enqueued_at: "2026-01-01T00:00:00Z".into(),
                custom_metadata: None,
                copies: 1,
                details: Some(serde_json::json!({"receivedDocuments": 2})),
            },
            sends: ["a0", "a1"]
                .iter()
                .map(|n| {
                    let mut r = crate::transport::NodeRequest::get("/indexes/m/documents");
                    r.method = Method::POST;
                    r.body = Bytes::from(format!("[{{\"id\":\"{n}\"}}]"));
                    (n.to_string(), r)
                })
                .collect(),
        };
        services.tasks.begin_write(&intent, &[]).unwrap();
        // The process stops here, before any node answered.
    }
    let services = services_in(&dir);
    let tasks = services.tasks.read_all().unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].awaiting, ["a0", "a1"]);
    assert_eq!(services.tasks.hint_counts().len(), 2);
    for id in ["a0", "a1"] {
        t.nodes.script(id, vec![], tasks_succeed());
    }
    let topology = t.fleet.topology.snapshot();
    let cluster = t.fleet.cluster(&topology);
    services.tasks.replay_hints(&cluster).await;
    let bodies: Vec<String> = t
        .nodes
        .received()
        .into_iter()
        .map(|r| String::from_utf8(r.request.body.to_vec()).unwrap())
        .collect();
    assert_eq!(bodies.len(), 2);
    assert!(bodies.contains(&r#"[{"id":"a0"}]"#.to_string()));
    let task = services.tasks.get(tasks[0].uid).unwrap().unwrap();
    assert!(task.awaiting.is_empty());
    assert_eq!(task.node_tasks.len(), 2);
    // Nothing is recovered twice.
    drop(services);
    let services = services_in(&dir);
    assert_eq!(services.tasks.read_all().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_index_missing_on_a_node_is_created_there_from_one_that_has_it() {
    let t = TestFleet::new(&["a"], 2, 8, None);
    let services = services();
    let holder = |has: bool| {
        Step::Reply(std::sync::Arc::new(
            move |req: &crate::transport::NodeRequest| {
                match (req.method.as_str(), req.path.as_str()) {
                ("GET", p) if p.starts_with("/indexes?") => {
                    let results = if has {
                        r#"[{"uid":"m","primaryKey":"sku"}]"#
                    } else {
                        "[]"
                    };
                    (200, format!(r#"{{"results":{results}}}"#))
                }
                ("GET", "/indexes/m/settings") => (
                    200,
                    r#"{"filterableAttributes":["_miroir_shard","color"],"sortableAttributes":["price"]}"#.into(),
                ),
                _ => (202, ENQUEUED.into()),
            }
            },
        ))
    };
    t.nodes.script("a0", vec![], holder(true));
    t.nodes.script("a1", vec![], holder(false));
    let topology = t.fleet.topology.snapshot();
    let cluster = t.fleet.cluster(&topology);
    assert_eq!(services.tasks.repair_indexes(&cluster).await, 1);
    let to_a1: Vec<(String, String)> = t
        .nodes
        .received()
        .into_iter()
        .filter(|r| r.node == "a1" && r.request.method != Method::GET)
        .map(|r| {
            (
                r.request.path.clone(),
                String::from_utf8(r.request.body.to_vec()).unwrap(),
            )
        })
        .collect();
    assert_eq!(to_a1.len(), 2, "{to_a1:?}");
    assert_eq!(to_a1[0].0, "/indexes");
    assert_eq!(to_a1[0].1, r#"{"uid":"m","primaryKey":"sku"}"#);
    assert_eq!(to_a1[1].0, "/indexes/m/settings");
    assert!(to_a1[1]
        .1
        .contains(r#""filterableAttributes":["_miroir_shard","color"]"#));

    // Nothing is repaired while a node catches up on missed writes.
    services
        .tasks
        .hint("a1", &crate::transport::NodeRequest::get("/x"))
        .unwrap();
    assert_eq!(services.tasks.repair_indexes(&cluster).await, 0);
}

/// The fleet's topology with shard `shard` moving from its owner to `to` (move 42).
fn moving(t: &TestFleet, shard: u32, to: &str) {
    let topology = t.fleet.topology.snapshot();
    let specs: Vec<crate::config::NodeSpec> = topology
        .nodes
        .iter()
        .map(|n| crate::config::NodeSpec {
            id: n.id.clone(),
            url: n.url.clone(),
            authority: n.authority.clone(),
            addr: n.addr,
            group: topology.groups[n.group].name.clone(),
            weight: 1,
        })
        .collect();
    let placement = crate::placement::Placement::rendezvous(
        &crate::config::ClusterSpec {
            shards: topology.shards,
            replication_factor: 1,
        },
        &specs,
    );
    let next = crate::topology::Topology::build(
        &placement,
        &specs,
        &[(42, shard, to.to_string())],
        &[],
        topology.generation + 1,
    );
    t.fleet.topology.swap(next);
}

/// A `POST` through the gateway's write path.
async fn write(
    t: &TestFleet,
    services: &Services,
    op: Op,
    path: &str,
    body: &str,
) -> crate::respond::Reply {
    send(t, services, Method::POST, op, path, body).await
}

/// The bodies recorded for move 42, oldest first.
fn recorded(services: &Services) -> Vec<(String, serde_json::Value)> {
    services
        .tasks
        .move_log(42, 100)
        .unwrap()
        .into_iter()
        .map(|(_, bytes)| {
            let (req, _) = crate::tasks::handoff::decode_for(&bytes).unwrap();
            (req.path, serde_json::from_slice(&req.body).unwrap())
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn writes_to_a_moving_shard_go_to_its_owner_and_are_recorded_for_the_next_one() {
    let t = TestFleet::new(&["a"], 2, 8, None);
    let services = services();
    t.nodes.script("a0", vec![], Step::status(202, ENQUEUED));
    t.nodes.script("a1", vec![], Step::status(202, ENQUEUED));
    let ids: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    let shard_of = |id: &String| crate::routing::shard_of(id.as_bytes(), 8);
    let shard = shard_of(&ids[0]);
    let topology = t.fleet.topology.snapshot();
    let from = topology.nodes[topology.owners(shard)[0]].id.clone();
    let to = if from == "a0" { "a1" } else { "a0" }.to_string();
    moving(&t, shard, &to);

    let body = serde_json::to_string(&ids).unwrap();
    let path = "/indexes/m/documents/delete-batch";
    let reply = write(&t, &services, Op::DeleteDocuments, path, &body).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    // The next owner got nothing of the moving shard; its record has exactly those ids.
    let sent_to = |node: &str| -> Vec<String> {
        t.nodes
            .received()
            .into_iter()
            .filter(|r| r.node == node)
            .flat_map(|r| serde_json::from_slice::<Vec<String>>(&r.request.body).unwrap())
            .collect()
    };
    assert!(sent_to(&to).iter().all(|id| shard_of(id) != shard));
    let moving_ids: Vec<String> = ids
        .iter()
        .filter(|id| shard_of(id) == shard)
        .cloned()
        .collect();
    assert!(!moving_ids.is_empty());
    assert!(moving_ids.iter().all(|id| sent_to(&from).contains(id)));
    let log = recorded(&services);
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].0, path);
    assert_eq!(log[0].1, serde_json::json!(moving_ids));

    // A deletion by filter is recorded narrowed to the shard.
    let path = "/indexes/m/documents/delete";
    let reply = write(
        &t,
        &services,
        Op::Broadcast,
        path,
        r#"{"filter":"genre = sf"}"#,
    )
    .await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    let log = recorded(&services);
    assert_eq!(log.len(), 2);
    assert_eq!(
        log[1].1["filter"],
        serde_json::json!(["genre = sf", crate::shard_tag::filter(&[shard])])
    );

    // A write no node takes leaves nothing to replay.
    t.nodes.script("a0", vec![], Step::refuse());
    t.nodes.script("a1", vec![], Step::refuse());
    let path = "/indexes/m/documents/delete-batch";
    let reply = write(&t, &services, Op::DeleteDocuments, path, &body).await;
    assert_eq!(reply.status, 503);
    assert_eq!(recorded(&services).len(), 2);

    // Writes that cannot be replayed twice are refused while the shard moves.
    let path = "/indexes/m/documents/edit";
    let reply = write(
        &t,
        &services,
        Op::Broadcast,
        path,
        r#"{"function":"doc.x = 1"}"#,
    )
    .await;
    assert_eq!(reply.status, 503);
    let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["code"], "miroir_shards_moving");
}
