//! `GET /stats` and `GET /indexes/{uid}/stats`: every node asked for its share, merged by
//! [`crate::merge::stats`].

use serde_json::Value;

use super::{relay, unreachable, Request};
use crate::cluster::Cluster;
use crate::merge::stats::humanize_sizes;
use crate::merge::{merge_global_stats, merge_index_stats};
use crate::respond::Reply;

pub async fn stats(cluster: &Cluster<'_>, req: &Request<'_>) -> Reply {
    let topology = cluster.topology;
    // Sizes are summed as numbers, then written as the client asked. An unknown format goes
    // to the nodes as is, and they refuse it.
    let (human, target) = raw_sizes(req);
    let mut forward = req.forward();
    forward.path = target;
    // Every node answers with its share; all groups hold every document once.
    let sends = (0..topology.nodes.len())
        .map(|n| (n, forward.clone()))
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
    let mut merged = if req.route.index.is_some() {
        merge_index_stats(&refs, copies)
    } else {
        merge_global_stats(&refs, copies)
    };
    if human {
        humanize_sizes(&mut merged);
    }
    Reply::json(200, merged.to_string())
}

/// Whether the client asked for `sizeFormat=human`, and the target that asks the nodes for
/// sizes in bytes.
fn raw_sizes(req: &Request<'_>) -> (bool, String) {
    let pairs = crate::query_string::pairs(req.query);
    let format = pairs
        .iter()
        .find(|(k, _)| k == "sizeFormat")
        .map(|(_, v)| v.as_str());
    if !matches!(format, Some("human" | "raw")) {
        return (false, req.target());
    }
    let kept: Vec<&str> = req
        .query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("sizeFormat="))
        .collect();
    let target = if kept.is_empty() {
        req.path.to_string()
    } else {
        format!("{}?{}", req.path, kept.join("&"))
    };
    (format == Some("human"), target)
}
