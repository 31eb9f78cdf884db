//! `miroir check-config --plan FILE`: the moves a reload to FILE would start, read from the
//! data directory's placement without changing anything, with the documents each would copy
//! when the nodes answer, and a refusal of any plan that would lose a shard's only copy.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::nodes::NodeApi;
use super::state::State;
use super::{projected, replan, Rebalancer};
use crate::config::Config;
use crate::topology::Topology;
use crate::transport::Transport;

/// What `--plan` prints, and whether the plan is refused.
pub struct Preview {
    pub text: String,
    pub refused: bool,
}

/// The preview of reloading to `config` from `state`; nodes are asked through `transport`.
pub async fn preview(
    config: &Config,
    state: &State,
    transport: &dyn Transport,
    master: Option<&http::HeaderValue>,
) -> Preview {
    let mut out = String::new();
    let kept = state
        .active()
        .filter(|m| m.phase != super::state::Phase::Pending)
        .count();
    let mut draft = state.clone();
    draft
        .moves
        .retain(|m| m.phase != super::state::Phase::Pending);
    let planned = match replan(&draft, &config.nodes, false) {
        Ok(p) => p,
        Err(e) => {
            return Preview {
                text: format!("refused: {e}\n"),
                refused: true,
            }
        }
    };
    let topology: Topology = Rebalancer::topology(state, &config.nodes, 0);
    let mut up = BTreeMap::new();
    for node in &topology.nodes {
        let api = NodeApi {
            transport,
            master,
            node,
        };
        let reachable = api.ok(http::Method::GET, "/health", None).await.is_ok();
        up.insert(node.id.clone(), reachable);
    }
    let before = projected(&draft);
    let mut after = before.clone();
    for m in &planned {
        if let Some(g) = after.group(&m.group) {
            after.set_owner(m.shard, g, m.slot, &m.to);
        }
    }
    let _ = writeln!(
        out,
        "placement epoch {} in {}; {} moves under way are kept",
        state.placement.epoch,
        config.server.data_dir.display(),
        kept
    );
    let _ = writeln!(
        out,
        "\nnode                 group        shards now  after  reachable"
    );
    let (now, then) = (before.counts(), after.counts());
    for node in &topology.nodes {
        let wanted = config.nodes.iter().any(|n| n.id == node.id);
        let _ = writeln!(
            out,
            "{:<20} {:<12} {:>10}  {:>5}  {}{}",
            node.id,
            topology.groups[node.group].name,
            now.get(node.id.as_str()).copied().unwrap_or(0),
            then.get(node.id.as_str()).copied().unwrap_or(0),
            if up[&node.id] { "yes" } else { "NO" },
            if wanted {
                ""
            } else {
                "  (leaves: drained, then dropped)"
            }
        );
    }
    let _ = writeln!(out, "\n{} moves:", planned.len());
    let _ = writeln!(
        out,
        "shard  group        slot  from                 to                   documents"
    );
    let mut refused = Vec::new();
    for m in &planned {
        // Where the documents would come from: the old owner, or another holder.
        let holders: Vec<&str> = (0..before.groups.len())
            .flat_map(|g| {
                before
                    .owners_in_group(m.shard, g)
                    .iter()
                    .map(String::as_str)
            })
            .filter(|id| *id != m.to)
            .collect();
        let source = std::iter::once(m.from.as_str())
            .chain(holders.iter().copied())
            .find(|id| up.get(*id).copied().unwrap_or(false));
        let documents = match source.and_then(|id| topology.node_by_id(id)) {
            Some(n) => {
                let api = NodeApi {
                    transport,
                    master,
                    node: &topology.nodes[n],
                };
                count(&api, m.shard).await
            }
            None => {
                refused.push(m.shard);
                "-".to_string()
            }
        };
        let _ = writeln!(
            out,
            "{:<6} {:<12} {:<5} {:<20} {:<20} {}",
            m.shard, m.group, m.slot, m.from, m.to, documents
        );
    }
    let rf = before.replication_factor;
    let groups = before.groups.len();
    let _ = writeln!(
        out,
        "\ntolerates: writes keep their quorum on the current owners while shards move; each shard has {} cop{} ({} per group in {} group{}), so {} node{} may fail during the rebalance without a shard becoming unavailable; a failed move retries and loses nothing.",
        rf * groups,
        if rf * groups == 1 { "y" } else { "ies" },
        rf,
        groups,
        if groups == 1 { "" } else { "s" },
        rf * groups - 1,
        if rf * groups == 2 { "" } else { "s" },
    );
    refused.sort_unstable();
    refused.dedup();
    if !refused.is_empty() {
        let _ = writeln!(
            out,
            "\nrefused: shards {refused:?} have no reachable copy (their node is down and no replica answers): after this reload their moves would wait for a copy to return, and the shards stay unavailable until then. Bring the node back first (`--accept-loss` prints the plan without refusing it)."
        );
    }
    Preview {
        text: out,
        refused: !refused.is_empty(),
    }
}

/// Documents of `shard` over every index of a node, or why they are unknown.
async fn count(api: &NodeApi<'_>, shard: u32) -> String {
    let indexes = match api.indexes().await {
        Ok(i) => i,
        Err(e) => return format!("? ({e})"),
    };
    let mut total = 0;
    for (uid, _) in indexes {
        match api.count(&uid, shard).await {
            Ok(n) => total += n,
            Err(e) => return format!("? ({e})"),
        }
    }
    total.to_string()
}
