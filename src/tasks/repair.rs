//! Anti-entropy for index metadata: an index present on some nodes and missing on others
//! (created straight on a node, or left so by a failure the write records could not see) is
//! created where it is missing, with the primary key and settings of a node that has it. Only
//! when the gateway knows of nothing that could still change it: no node catching up on missed
//! writes and no unfinished task on that index (a creation or deletion still under way).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use http::{HeaderValue, Method};
use serde_json::{json, Value};

use super::TaskService;
use crate::cluster::Cluster;
use crate::shard_tag::settings;
use crate::transport::NodeRequest;

/// Indexes each node answering holds, with their primary keys; `None` if a node that is up
/// did not answer (then nothing is repaired this round).
async fn holdings(cluster: &Cluster<'_>) -> Option<Vec<(usize, BTreeMap<String, Value>)>> {
    let up: Vec<usize> = (0..cluster.topology.nodes.len())
        .filter(|&n| cluster.health.is_up(&cluster.topology.nodes[n]))
        .collect();
    let requests = up
        .iter()
        .map(|&n| {
            (
                n,
                cluster.own_request(NodeRequest::get("/indexes?limit=100000")),
            )
        })
        .collect();
    let mut out = Vec::new();
    for (n, result) in cluster.send_each(requests).await {
        let resp = result.ok().filter(|r| r.status == 200)?;
        let body: Value = serde_json::from_slice(&resp.body).ok()?;
        let indexes = body["results"]
            .as_array()?
            .iter()
            .filter_map(|i| Some((i["uid"].as_str()?.to_string(), i["primaryKey"].clone())))
            .collect();
        out.push((n, indexes));
    }
    Some(out)
}

fn json_request(method: Method, path: String, body: Value) -> NodeRequest {
    NodeRequest {
        method,
        path,
        headers: vec![(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body: Bytes::from(body.to_string()),
    }
}

impl TaskService {
    /// One anti-entropy pass; how many indexes it created on nodes missing them.
    pub async fn repair_indexes(&self, cluster: &Cluster<'_>) -> usize {
        if !self.lagging_nodes().is_empty() {
            return 0;
        }
        let Some(held) = holdings(cluster).await else {
            return 0;
        };
        let all: BTreeSet<&String> = held.iter().flat_map(|(_, i)| i.keys()).collect();
        let Some(busy) = self.unfinished_indexes() else {
            return 0;
        };
        let mut repaired = 0;
        for uid in all {
            if busy.contains(uid) {
                continue;
            }
            let Some((source, primary_key)) = held
                .iter()
                .find_map(|(n, i)| i.get(uid).map(|pk| (*n, pk.clone())))
            else {
                continue;
            };
            let missing: Vec<usize> = held
                .iter()
                .filter(|(_, i)| !i.contains_key(uid))
                .map(|(n, _)| *n)
                .collect();
            if missing.is_empty() {
                continue;
            }
            let get = NodeRequest::get(format!("/indexes/{uid}/settings"));
            let Ok(resp) = cluster.send(source, &cluster.own_request(get)).await else {
                continue;
            };
            let Ok(mut index_settings) = serde_json::from_slice::<Value>(&resp.body) else {
                continue;
            };
            for (setting, _, _) in settings::KEPT {
                if let Some(v) = index_settings.get_mut(setting) {
                    *v = settings::with_kept(setting, v);
                }
            }
            for node in missing {
                let create = json_request(
                    Method::POST,
                    "/indexes".into(),
                    json!({"uid": uid, "primaryKey": primary_key}),
                );
                let patch = json_request(
                    Method::PATCH,
                    format!("/indexes/{uid}/settings"),
                    index_settings.clone(),
                );
                let name = &cluster.topology.nodes[node].id;
                for req in [create, patch] {
                    if let Err(e) = cluster.send(node, &cluster.own_request(req)).await {
                        log::warn!("could not repair index `{uid}` on node {name}: {e}");
                    }
                }
                log::warn!(
                    "index `{uid}` was missing on node {name}: created there from node {}",
                    cluster.topology.nodes[source].id
                );
                repaired += 1;
            }
        }
        repaired
    }
}
