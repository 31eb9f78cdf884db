//! What it takes to give every node the same API keys, from what each node lists.
//!
//! A key's string is derived from its `uid` and the master key, so two nodes that hold a key
//! with one uid (and share the master key) accept the same key string, and a tenant token
//! signed with it. Each node creates its own default keys at first start, with random uids:
//! of each default, the gateway keeps one (the one most nodes hold, then the oldest) and
//! deletes the others. Any other key missing on a node is created there with its uid, name,
//! description, actions, indexes and expiry; a key deleted through the gateway (a tombstone)
//! is deleted where it is still found.

use std::collections::{BTreeMap, HashSet};

use serde_json::{json, Value};
use time::OffsetDateTime;

/// The names Meilisearch gives the keys it creates at first start.
pub const DEFAULT_NAMES: [&str; 4] = [
    "Default Search API Key",
    "Default Admin API Key",
    "Default Read-Only Admin API Key",
    "Default Chat API Key",
];

/// One change to one node's keys.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyFix {
    /// `POST /keys` with this body (which carries the uid).
    Create { node: usize, body: Value },
    /// `DELETE /keys/{uid}`.
    Delete { node: usize, uid: String },
}

/// The changes that align the keys `listed` by each node (`(node, keys)`, every key as
/// `GET /keys` shows it). An expired key is not recreated (a node refuses to create a key
/// that expires in the past). Creations come first, so no
/// node is ever without a default key of a kind it had.
pub fn plan(
    listed: &[(usize, Vec<Value>)],
    tombstones: &HashSet<String>,
    now: OffsetDateTime,
) -> Vec<KeyFix> {
    // uid -> (key, nodes holding it)
    let mut keys: BTreeMap<&str, (&Value, Vec<usize>)> = BTreeMap::new();
    for (node, list) in listed {
        for key in list {
            let Some(uid) = key["uid"].as_str() else {
                continue;
            };
            keys.entry(uid).or_insert((key, Vec::new())).1.push(*node);
        }
    }
    let mut unwanted: HashSet<&str> = keys
        .keys()
        .copied()
        .filter(|uid| tombstones.contains(*uid))
        .collect();
    for name in DEFAULT_NAMES {
        let mut defaults: Vec<(&str, &Value, usize)> = keys
            .iter()
            .filter(|(uid, (key, _))| {
                key["name"].as_str() == Some(name) && !tombstones.contains(**uid)
            })
            .map(|(uid, (key, nodes))| (*uid, *key, nodes.len()))
            .collect();
        // Most nodes first, then the oldest, then the smallest uid: every gateway, and every
        // round, picks the same one.
        defaults.sort_by(|a, b| {
            b.2.cmp(&a.2)
                .then_with(|| created(a.1).cmp(created(b.1)))
                .then_with(|| a.0.cmp(b.0))
        });
        unwanted.extend(defaults.iter().skip(1).map(|d| d.0));
    }
    let mut creates = Vec::new();
    let mut deletes = Vec::new();
    for (uid, (key, holders)) in &keys {
        if unwanted.contains(uid) {
            deletes.extend(holders.iter().map(|&node| KeyFix::Delete {
                node,
                uid: uid.to_string(),
            }));
            continue;
        }
        if expires(key).is_some_and(|at| at <= now) {
            continue;
        }
        for (node, _) in listed {
            if !holders.contains(node) {
                creates.push(KeyFix::Create {
                    node: *node,
                    body: creation(key),
                });
            }
        }
    }
    creates.extend(deletes);
    creates
}

fn expires(key: &Value) -> Option<OffsetDateTime> {
    let at = key["expiresAt"].as_str()?;
    OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()
}

fn created(key: &Value) -> &str {
    key["createdAt"].as_str().unwrap_or("")
}

/// The `POST /keys` body that recreates `key` on another node.
fn creation(key: &Value) -> Value {
    json!({
        "uid": key["uid"],
        "name": key["name"],
        "description": key["description"],
        "actions": key["actions"],
        "indexes": key["indexes"],
        "expiresAt": key["expiresAt"],
    })
}
