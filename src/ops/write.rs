//! Sending one client write to its nodes and answering with one gateway task.
//!
//! The rule (stated in the README): a write is recorded before any node sees it; it is
//! acknowledged (`202`) once some node has taken it and every part a node missed is durably
//! queued for that node (hinted handoff). Its task finishes with the quorum (for every shard
//! it touches, a majority of the shard's owners in some replica group), or, short of it, once
//! the nodes that missed it have their part. A write no node took changes nothing anywhere
//! and answers the nodes' refusal, or `503 miroir_write_quorum_failed` when none answered.
//! `X-Miroir-Degraded` names the nodes whose part was queued.

use std::collections::BTreeSet;

use futures::future::join_all;
use http::HeaderValue;
use serde_json::Value;

use super::{relay, store_failure, Request, Services};
use crate::cluster::Cluster;
use crate::error::MeiliError;
use crate::respond::Reply;
use crate::tasks::intent::{Intent, WriteMeta};
use crate::tasks::{GatewayTask, NodeTaskRef};
use crate::topology::{NodeIdx, Topology};
use crate::transport::{NodeError, NodeRequest};

/// One request of a write plan.
pub struct Send {
    pub node: NodeIdx,
    pub request: NodeRequest,
    /// The gateway's own addition (e.g. keeping the shard tag filterable).
    pub internal: bool,
}

/// A client write, ready to send.
pub struct WritePlan {
    pub sends: Vec<Send>,
    /// Shards the write touches (all of them for a broadcast).
    pub shards: Vec<u32>,
    /// The task type and index, when no node answer carries them.
    pub kind: &'static str,
    pub index_uid: Option<String>,
    pub details: Option<Value>,
    pub copies: u32,
}

/// Whether the acknowledging nodes meet the quorum for every shard in `shards`.
pub fn quorum_met(topology: &Topology, shards: &[u32], acked: &BTreeSet<NodeIdx>) -> bool {
    shards.iter().all(|&s| {
        (0..topology.groups.len()).any(|g| {
            let owners = topology.owners_in_group(s, g);
            let ok = owners.iter().filter(|n| acked.contains(n)).count();
            ok * 2 > owners.len()
        })
    })
}

/// Sends the plan concurrently, then records and answers the gateway task.
pub async fn execute(
    cluster: &Cluster<'_>,
    services: &Services,
    req: &Request<'_>,
    plan: WritePlan,
) -> Reply {
    // The gateway's own follow-ups go once the client's requests are in each node's queue, so
    // they are processed after them (a settings task first would create the index itself).
    // Parts for a moving shard's next owner are recorded, to be replayed once it has a copy.
    let (recorded, sends): (Vec<Send>, Vec<Send>) = plan
        .sends
        .into_iter()
        .partition(|s| cluster.topology.recorder(s.node).is_some());
    let recorded: Vec<(u64, &NodeRequest)> = recorded
        .iter()
        .filter_map(|s| Some((cluster.topology.recorder(s.node)?.move_id, &s.request)))
        .collect();
    let mut moves: Vec<u64> = recorded.iter().map(|(m, _)| *m).collect();
    moves.sort_unstable();
    moves.dedup();
    let (mut sends, followups): (Vec<Send>, Vec<Send>) =
        sends.into_iter().partition(|s| !s.internal);
    let public = sends.len();
    sends.extend(followups);
    // The write is recorded before any node sees it: a stop mid-write is completed at the
    // next start (see `tasks::intent`).
    let intent = Intent {
        meta: WriteMeta {
            kind: plan.kind.to_string(),
            index_uid: plan.index_uid.clone(),
            enqueued_at: req.received_at.clone(),
            custom_metadata: req.param("customMetadata"),
            copies: plan.copies,
            details: plan.details.clone(),
        },
        sends: sends
            .iter()
            .map(|s| (cluster.topology.nodes[s.node].id.clone(), s.request.clone()))
            .collect(),
    };
    let intent_id = match services.tasks.begin_write(&intent, &recorded) {
        Ok(id) => id,
        Err(e) => return store_failure(&e),
    };
    // A node still catching up on missed writes gets this one queued behind them, never
    // sent ahead of them.
    let lagging = services.tasks.lagging_now();
    let deferred: Vec<bool> = sends
        .iter()
        .map(|s| lagging.contains(&cluster.topology.nodes[s.node].id))
        .collect();
    // Nodes in parallel; a node's own requests (the parts of a large batch) one after the
    // other, so its queue holds them in the client's order.
    let send_all = |range: std::ops::Range<usize>| {
        let (sends, deferred) = (&sends, &deferred);
        let mut by_node: Vec<(NodeIdx, Vec<usize>)> = Vec::new();
        for i in range.filter(|&i| !deferred[i]) {
            match by_node.iter_mut().find(|(n, _)| *n == sends[i].node) {
                Some((_, list)) => list.push(i),
                None => by_node.push((sends[i].node, vec![i])),
            }
        }
        join_all(by_node.into_iter().map(|(_, list)| async move {
            let mut out = Vec::with_capacity(list.len());
            let mut failed = false;
            for i in list {
                // After a part fails, the later ones wait with it for the replay, in order.
                let result = if failed {
                    Err(NodeError::Connect("an earlier part failed".into()))
                } else {
                    cluster.send(sends[i].node, &sends[i].request).await
                };
                failed |= !matches!(&result, Ok(r) if r.status < 500);
                out.push((i, result));
            }
            out
        }))
    };
    let mut results: Vec<_> = send_all(0..public).await.into_iter().flatten().collect();
    results.extend(send_all(public..sends.len()).await.into_iter().flatten());

    let mut node_tasks = Vec::new();
    let mut acked = BTreeSet::new();
    let mut failed: BTreeSet<NodeIdx> = (0..sends.len())
        .filter(|&i| deferred[i])
        .map(|i| sends[i].node)
        .collect();
    let mut missed = deferred.clone();
    let mut first_error = None;
    let mut template: Option<(u16, Value)> = None;
    for (i, result) in &results {
        let (node, internal) = (&sends[*i].node, &sends[*i].internal);
        match result {
            Ok(resp) if (200..300).contains(&resp.status) => {
                let body: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
                if let Some(uid) = body["taskUid"].as_u64() {
                    node_tasks.push(NodeTaskRef {
                        node: cluster.topology.nodes[*node].id.clone(),
                        uid,
                        internal: *internal,
                    });
                }
                if !internal {
                    acked.insert(*node);
                    if template.is_none() {
                        template = Some((resp.status, body));
                    }
                }
            }
            Ok(resp) => {
                if !internal && first_error.is_none() {
                    first_error = Some(relay(resp));
                }
                missed[*i] = resp.status >= 500;
                failed.insert(*node);
            }
            Err(e) => {
                log::warn!(
                    "write to node {} failed: {e}",
                    cluster.topology.nodes[*node].id
                );
                missed[*i] = true;
                failed.insert(*node);
            }
        }
    }
    // No node took it (each refused it, or none answered): nothing was written anywhere.
    let Some((status, template)) = template else {
        if let Err(e) = services.tasks.abandon_write(intent_id, &moves) {
            log::error!("{e}");
        }
        return first_error.unwrap_or_else(|| quorum_failure(cluster, &failed));
    };
    // Some node holds the write now. Each part a node missed (down, failing, or behind on
    // earlier writes) is queued for it, durably, with the task: the write is acknowledged,
    // and every copy converges. The task finishes with the quorum (for every shard, a
    // majority of its owners in some group), or, short of it, once the nodes it waits for
    // have their part.
    let kind = template["type"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| plan.kind.to_string());
    let index_uid = match &template["indexUid"] {
        Value::String(s) => Some(s.clone()),
        _ => plan.index_uid.clone(),
    };
    let queued: Vec<(String, &NodeRequest)> = sends
        .iter()
        .zip(&missed)
        .filter(|(_, m)| **m)
        .map(|(s, _)| (cluster.topology.nodes[s.node].id.clone(), &s.request))
        .collect();
    let awaiting: Vec<String> = if quorum_met(cluster.topology, &plan.shards, &acked) {
        Vec::new()
    } else {
        sends
            .iter()
            .zip(&missed)
            .filter(|(s, m)| **m && !s.internal)
            .map(|(s, _)| cluster.topology.nodes[s.node].id.clone())
            .collect()
    };
    let build = |uid| GatewayTask {
        uid,
        index_uid: index_uid.clone(),
        kind: kind.clone(),
        enqueued_at: req.received_at.clone(),
        custom_metadata: template["customMetadata"].as_str().map(str::to_string),
        copies: plan.copies,
        node_tasks: node_tasks.clone(),
        details: plan.details.clone(),
        error: None,
        canceled_by: None,
        view: None,
        awaiting: awaiting.clone(),
    };
    let task = match services.tasks.settle_write(intent_id, &build, &queued) {
        Ok(t) => t,
        Err(e) => return store_failure(&e),
    };
    cluster.health.set_lagging(services.tasks.lagging_nodes());
    let mut reply = Reply::json(status, task.summary().to_string());
    let degraded: Vec<&str> = failed
        .iter()
        .map(|&n| cluster.topology.nodes[n].id.as_str())
        .collect();
    if !degraded.is_empty() {
        log::warn!("task {} acknowledged without nodes {degraded:?}", task.uid);
        if let Ok(v) = HeaderValue::from_str(&degraded.join(",")) {
            reply.headers.push((
                http::header::HeaderName::from_static("x-miroir-degraded"),
                v,
            ));
        }
    }
    reply
}

fn quorum_failure(cluster: &Cluster<'_>, failed: &BTreeSet<NodeIdx>) -> Reply {
    let names: Vec<String> = failed
        .iter()
        .map(|&n| format!("`{}`", cluster.topology.nodes[n].id))
        .collect();
    Reply::error(&MeiliError::write_quorum_failed(&names))
}

/// A task the gateway settles alone, failed with a document error a node would have given.
pub fn failed_task(
    services: &Services,
    req: &Request<'_>,
    task_type: &str,
    index_uid: Option<String>,
    details: Value,
    (code, kind): (&str, &str),
    message: String,
) -> Reply {
    let error_json = serde_json::json!({
        "message": message,
        "code": code,
        "type": kind,
        "link": format!("https://docs.meilisearch.com/errors#{code}"),
    });
    let created = services.tasks.create(|uid| GatewayTask {
        uid,
        index_uid,
        kind: task_type.to_string(),
        enqueued_at: req.received_at.clone(),
        custom_metadata: req.param("customMetadata"),
        copies: 1,
        node_tasks: Vec::new(),
        details: Some(details),
        error: Some(error_json),
        canceled_by: None,
        view: None,
        awaiting: Vec::new(),
    });
    match created {
        Ok(task) => Reply::json(202, task.summary().to_string()),
        Err(e) => store_failure(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClusterSpec, NodeSpec};

    fn topo(groups: &[&str], rf: usize) -> Topology {
        let specs: Vec<NodeSpec> = groups
            .iter()
            .enumerate()
            .map(|(i, g)| NodeSpec {
                id: format!("n{i}"),
                url: format!("http://127.0.0.1:{}", 7000 + i),
                authority: format!("127.0.0.1:{}", 7000 + i),
                addr: ([127, 0, 0, 1], 7000 + i as u16).into(),
                group: g.to_string(),
                weight: 1,
            })
            .collect();
        Topology::new(
            &ClusterSpec {
                shards: 8,
                replication_factor: rf,
            },
            &specs,
            1,
        )
    }

    #[test]
    fn one_group_rf1_needs_every_owner() {
        let t = topo(&["a", "a", "a"], 1);
        let all: Vec<u32> = (0..8).collect();
        assert!(quorum_met(&t, &all, &[0, 1, 2].into()));
        assert!(!quorum_met(&t, &all, &[0, 1].into()));
        // A shard owned by node 0 only fails without it; shards owned elsewhere pass.
        let owned_by_2: Vec<u32> = (0..8).filter(|&s| t.owners(s) == [2]).collect();
        assert!(quorum_met(&t, &owned_by_2, &[2].into()));
    }

    #[test]
    fn one_healthy_group_is_enough() {
        let t = topo(&["a", "a", "b", "b"], 1);
        let all: Vec<u32> = (0..8).collect();
        assert!(
            quorum_met(&t, &all, &[2, 3].into()),
            "group b alone holds every shard"
        );
        assert!(
            !quorum_met(&t, &all, &[0, 2].into())
                || (0..8).all(|s| t.owners(s).contains(&0) || t.owners(s).contains(&2))
        );
    }

    #[test]
    fn rf3_needs_a_majority_of_owners() {
        let t = topo(&["a", "a", "a"], 3);
        let all: Vec<u32> = (0..8).collect();
        assert!(quorum_met(&t, &all, &[0, 1].into()));
        assert!(!quorum_met(&t, &all, &[0].into()));
    }
}
