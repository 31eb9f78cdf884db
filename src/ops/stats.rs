//! `GET /stats` and `GET /indexes/{uid}/stats`: every node asked for its share, merged by
//! [`crate::merge::stats`].

use serde_json::Value;

use super::{relay, unreachable, Request};
use crate::cluster::Cluster;
use crate::merge::{merge_global_stats, merge_index_stats};
use crate::respond::Reply;

pub async fn stats(cluster: &Cluster<'_>, req: &Request<'_>) -> Reply {
    let topology = cluster.topology;
    // Every node answers with its share; all groups hold every document once.
    let sends = (0..topology.nodes.len())
        .map(|n| (n, req.forward()))
        .collect();
    let results = cluster.send_each(sends).await;
    let mut bodies = Vec::new();
    for (_, r) in &results {
        match r {
            Ok(resp) if resp.status == 200 => {
                bodies.push(serde_json::from_slice::<Value>(&resp.body).unwrap_or(Value::Null))
            }
            Ok(resp) => return relay(resp),
            Err(e) => return unreachable(&e.to_string()),
        }
    }
    let copies = topology.copies() as u64;
    let refs: Vec<&Value> = bodies.iter().collect();
    let merged = if req.route.index.is_some() {
        merge_index_stats(&refs, copies)
    } else {
        merge_global_stats(&refs, copies)
    };
    Reply::json(200, merged.to_string())
}
