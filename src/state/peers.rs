//! Gateways sharing a store say which topology their configuration desires, so that two
//! gateways whose TOML files disagree notice it (a log line, `miroir_state_topology_disagreements`,
//! `peers` in `GET /_miroir/topology`) instead of routing by different fleets unawares.

use std::time::Duration;

use serde_json::{json, Value};

use crate::config::NodeSpec;
use crate::state::Doc;
use crate::tasks::TaskService;

/// How often a gateway says what it desires; a gateway silent for [`LIVE`] is gone.
pub const EVERY_ROUNDS: u64 = 4;
pub const LIVE: Duration = Duration::from_secs(10);

/// Another gateway on the same store and the topology it desires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub gateway: String,
    pub topology: String,
}

/// The desired topology as one canonical line: what two gateways must agree on.
pub fn fingerprint(shards: u32, replication_factor: usize, nodes: &[NodeSpec]) -> String {
    let mut parts: Vec<String> = nodes
        .iter()
        .map(|n| format!("{}={}@{}*{}", n.id, n.url, n.group, n.weight))
        .collect();
    parts.sort();
    format!(
        "shards={shards} rf={replication_factor} {}",
        parts.join(" ")
    )
}

/// Waits until every gateway of `peers` (the others of a shared store) says it uses `version` of `doc`
/// or a later one (or `within` passed); the gateways that did not.
pub async fn confirm(
    tasks: &TaskService,
    doc: Doc,
    version: u64,
    within: Duration,
    peers: Vec<String>,
) -> Vec<String> {
    let Ok(store) = tasks.state() else {
        return peers;
    };
    if peers.is_empty() || !store.shared() {
        return Vec::new();
    }
    let started = std::time::Instant::now();
    loop {
        let acks = store.doc_acks(doc).unwrap_or_default();
        let behind: Vec<String> = peers
            .iter()
            .filter(|p| acks.get(*p).is_none_or(|&v| v < version))
            .cloned()
            .collect();
        if behind.is_empty() || started.elapsed() >= within {
            return behind;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The peers for the admin API: each with whether it agrees with `mine`.
pub fn describe(peers: &[Peer], mine: &str) -> Value {
    Value::Array(
        peers
            .iter()
            .map(|p| {
                json!({
                    "gateway": p.gateway,
                    "agrees": p.topology == mine,
                    "topology": p.topology,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, url: &str) -> NodeSpec {
        NodeSpec {
            id: id.into(),
            url: url.into(),
            authority: url.trim_start_matches("http://").into(),
            addr: "127.0.0.1:7700".parse().unwrap(),
            group: "default".into(),
            weight: 1,
        }
    }

    #[test]
    fn the_order_of_nodes_does_not_matter_but_their_urls_do() {
        let a = node("a", "http://10.0.0.1:7700");
        let b = node("b", "http://10.0.0.2:7700");
        assert_eq!(
            fingerprint(64, 1, &[a.clone(), b.clone()]),
            fingerprint(64, 1, &[b.clone(), a.clone()])
        );
        let moved = node("b", "http://10.0.0.3:7700");
        assert_ne!(
            fingerprint(64, 1, &[a.clone(), b]),
            fingerprint(64, 1, &[a, moved])
        );
    }
}
