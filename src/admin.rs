//! The operator's API on the client port, under `/_miroir/`, master key only, answered in
//! Meilisearch's error style: the topology with the effective placement, and the rebalance
//! (progress, pause, resume, cancel, balance).
//!
//! - `GET /_miroir/topology`
//! - `GET /_miroir/rebalance`
//! - `POST /_miroir/rebalance` (balance the current nodes even if none changed)
//! - `POST /_miroir/rebalance/pause`, `/resume`, `/cancel`

use http::{HeaderValue, Method};
use serde_json::{json, Value};

use crate::error::{ErrorType, MeiliError};
use crate::rebalance::Rebalancer;
use crate::respond::Reply;

/// The prefix of the admin API.
pub const PREFIX: &str = "/_miroir/";

/// Answers an admin request.
pub fn handle(
    rebalancer: &Rebalancer,
    method: &Method,
    path: &str,
    authorization: Option<&HeaderValue>,
) -> Reply {
    if let Err(refused) = check_master(rebalancer.fleet.master.as_ref(), authorization) {
        return refused;
    }
    let route = path.trim_end_matches('/');
    let result = match (method, route) {
        (&Method::GET, "/_miroir/topology") => Ok(topology(rebalancer)),
        (&Method::GET, "/_miroir/rebalance") => Ok(rebalance(rebalancer)),
        (&Method::POST, "/_miroir/rebalance") => rebalancer
            .balance()
            .map(|summary| json!({"status": summary})),
        (&Method::POST, "/_miroir/rebalance/pause") => {
            rebalancer.set_paused(true).map(|()| rebalance(rebalancer))
        }
        (&Method::POST, "/_miroir/rebalance/resume") => {
            rebalancer.set_paused(false).map(|()| rebalance(rebalancer))
        }
        (&Method::POST, "/_miroir/rebalance/cancel") => {
            rebalancer.cancel().map(|ids| json!({"canceled": ids}))
        }
        (_, "/_miroir/topology" | "/_miroir/rebalance") => return Reply::empty(405),
        (_, p) if p.starts_with("/_miroir/rebalance/") && *method != Method::POST => {
            return Reply::empty(405)
        }
        _ => {
            return Reply::error(&MeiliError::new(
                404,
                "miroir_not_found",
                ErrorType::InvalidRequest,
                format!("`{path}` is not part of the Miroir admin API."),
            ))
        }
    };
    match result {
        Ok(body) => Reply::json(200, body.to_string()),
        Err(e) => Reply::error(&MeiliError::new(
            409,
            "miroir_rebalance_refused",
            ErrorType::InvalidRequest,
            e,
        )),
    }
}

/// Whether `authorization` is the master key (anything goes without one), as the admin API
/// requires; the refusal otherwise.
pub fn check_master(
    master: Option<&HeaderValue>,
    authorization: Option<&HeaderValue>,
) -> Result<(), Reply> {
    if let Some(master) = master {
        match authorization {
            None => {
                return Err(Reply::error(&MeiliError::new(
                    401,
                    "missing_authorization_header",
                    ErrorType::Auth,
                    "The Authorization header is missing. It must use the bearer authorization method.",
                )))
            }
            Some(given) if given.as_bytes() != master.as_bytes() => {
                return Err(Reply::error(&MeiliError::new(
                    403,
                    "invalid_api_key",
                    ErrorType::Auth,
                    "The provided API key is invalid. The Miroir admin API takes the master key only.",
                )))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Nodes, their health and shards, and the effective placement.
fn topology(r: &Rebalancer) -> Value {
    let t = r.fleet.topology.snapshot();
    let counts = t.owned_counts();
    let state = r.snapshot();
    let p = &state.placement;
    let groups: Vec<Value> = t
        .groups
        .iter()
        .map(|g| {
            let nodes: Vec<Value> = g
                .members
                .iter()
                .map(|&n| {
                    let node = &t.nodes[n];
                    json!({
                        "id": node.id,
                        "url": node.url,
                        "up": r.fleet.health.is_up(node),
                        "draining": node.draining,
                        "shards": counts[n],
                        "hintsPending": r.tasks.hint_counts().get(&node.id).copied().unwrap_or(0),
                    })
                })
                .collect();
            json!({"name": g.name, "nodes": nodes})
        })
        .collect();
    let placement: Vec<Value> = (0..p.shards)
        .map(|s| {
            let per_group: serde_json::Map<String, Value> = p
                .groups
                .iter()
                .enumerate()
                .map(|(g, name)| (name.clone(), json!(p.owners_in_group(s, g))))
                .collect();
            json!({"shard": s, "owners": per_group})
        })
        .collect();
    let mine = r.desired_fingerprint();
    json!({
        "epoch": p.epoch,
        "generation": t.generation,
        "peers": crate::state::peers::describe(&r.tasks.peers(), &mine),
        "shards": p.shards,
        "replicationFactor": p.replication_factor,
        "groups": groups,
        "placement": placement,
    })
}

/// The moves, with their phase and progress.
fn rebalance(r: &Rebalancer) -> Value {
    let state = r.snapshot();
    let mut by_phase = serde_json::Map::new();
    for phase in crate::rebalance::state::Phase::ALL {
        let n = state.moves.iter().filter(|m| m.phase == phase).count();
        by_phase.insert(phase.name().to_string(), json!(n));
    }
    let moves: Vec<Value> = state
        .moves
        .iter()
        .rev()
        .map(|m| {
            let mut v = serde_json::to_value(m).unwrap_or(Value::Null);
            if m.phase.records() {
                v["recordedWritesPending"] = json!(r.tasks.move_log_len(m.id).unwrap_or(0));
            }
            v
        })
        .collect();
    json!({
        "epoch": state.placement.epoch,
        "paused": state.paused,
        "active": state.active().count(),
        "phases": by_phase,
        "shared": r.is_shared(),
        // With a shared state, whether this gateway drives the moves (one does).
        "driving": r.driving(),
        "barrier": state.barrier,
        "moves": moves,
    })
}
