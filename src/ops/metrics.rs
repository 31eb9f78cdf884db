//! `GET /metrics` on the client port: every node's metrics (each asks for its experimental
//! `metrics` feature and a key that reaches every index, as alone), each sample labelled with
//! its node, then the gateway's own.

use super::{relay, unreachable, Request};
use crate::cluster::Cluster;
use crate::merge::prometheus::merge_exposition;
use crate::respond::Reply;

/// Prometheus's text format, as a node answers it.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4";

pub async fn metrics(cluster: &Cluster<'_>, req: &Request<'_>) -> Reply {
    let topology = cluster.topology;
    let forward = req.forward();
    let sends = topology
        .serving_nodes()
        .iter()
        .map(|&n| (n, forward.clone()))
        .collect();
    let results = cluster.send_each(sends).await;
    let mut texts = Vec::with_capacity(results.len());
    for (node, result) in &results {
        match result {
            Ok(resp) if resp.status == 200 => {
                texts.push((topology.nodes[*node].id.as_str(), &resp.body[..]))
            }
            Ok(resp) => return relay(resp),
            Err(e) => return unreachable(&e.to_string()),
        }
    }
    let body = merge_exposition(&texts, &cluster.metrics.render());
    Reply {
        content_type: Some(TEXT_FORMAT),
        ..Reply::json(200, body)
    }
}
