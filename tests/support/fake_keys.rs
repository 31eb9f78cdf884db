//! API keys as a Meilisearch node keeps them: four default keys with random uids at first
//! start, a key string derived from the uid (so nodes given one uid agree on the key),
//! listing newest first, and Meilisearch's errors for a uid taken or a key not found.

use serde_json::{json, Value};

use super::fake_node::{error, json_answer, Answer, NodeState};
use super::http::Message;

/// The keys a node creates at first start, as Meilisearch v1.50 does.
pub fn defaults() -> Vec<Value> {
    [
        ("Default Chat API Key", "Use it to chat and search from the frontend", json!(["chatCompletions", "search"])),
        ("Default Read-Only Admin API Key", "Use it to read information across the whole database. Caution! Do not expose this key on a public frontend", json!(["*.get", "keys.get"])),
        ("Default Admin API Key", "Use it for anything that is not a search operation. Caution! Do not expose it on a public frontend", json!(["*"])),
        ("Default Search API Key", "Use it to search from the frontend", json!(["search"])),
    ]
    .into_iter()
    .map(|(name, description, actions)| {
        key(json!({
            "uid": uuid::Uuid::new_v4().to_string(),
            "name": name,
            "description": description,
            "actions": actions,
            "indexes": ["*"],
            "expiresAt": null,
        }))
    })
    .collect()
}

/// A stored key from a creation body that carries its uid.
fn key(mut body: Value) -> Value {
    let uid = body["uid"].as_str().unwrap_or_default().to_string();
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    body["key"] = Value::from(format!("k{}", uid.replace('-', "")));
    for field in ["name", "description", "expiresAt"] {
        if body.get(field).is_none() {
            body[field] = Value::Null;
        }
    }
    body["createdAt"] = Value::from(now.clone());
    body["updatedAt"] = Value::from(now);
    body
}

fn not_found(k: &str) -> Answer {
    error(
        404,
        "api_key_not_found",
        "invalid_request",
        &format!("API key `{k}` not found."),
    )
}

/// The `/keys` routes; `None` for any other path.
pub fn route(state: &mut NodeState, req: &Message, segs: &[&str]) -> Option<Answer> {
    let find = |keys: &[Value], k: &str| {
        keys.iter()
            .position(|key| key["key"] == k || key["uid"] == k)
    };
    Some(match (req.method.as_str(), segs) {
        ("GET", ["keys"]) => {
            let param = |name: &str, default: usize| {
                super::fake_meili::param(req, name)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(default)
            };
            let (offset, limit) = (param("offset", 0), param("limit", 20));
            // Newest first: the order of creation, reversed.
            let results: Vec<Value> = state
                .keys
                .iter()
                .rev()
                .skip(offset)
                .take(limit)
                .cloned()
                .collect();
            json_answer(
                200,
                json!({"results": results, "offset": offset, "limit": limit, "total": state.keys.len()}),
            )
        }
        ("POST", ["keys"]) => {
            let mut body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            if !body.is_object() {
                return Some(error(
                    400,
                    "bad_request",
                    "invalid_request",
                    "Invalid JSON value",
                ));
            }
            let uid = match body["uid"].as_str() {
                Some(uid) => uid.to_string(),
                None => uuid::Uuid::new_v4().to_string(),
            };
            if find(&state.keys, &uid).is_some() {
                return Some(error(
                    409,
                    "api_key_already_exists",
                    "invalid_request",
                    &format!("`uid` field value `{uid}` is already an existing API key."),
                ));
            }
            body["uid"] = Value::from(uid);
            let key = key(body);
            state.keys.push(key.clone());
            json_answer(201, key)
        }
        ("GET", ["keys", k]) => match find(&state.keys, k) {
            Some(i) => json_answer(200, state.keys[i].clone()),
            None => not_found(k),
        },
        ("PATCH", ["keys", k]) => match find(&state.keys, k) {
            Some(i) => {
                let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                for field in ["name", "description"] {
                    if let Some(v) = body.get(field) {
                        state.keys[i][field] = v.clone();
                    }
                }
                json_answer(200, state.keys[i].clone())
            }
            None => not_found(k),
        },
        ("DELETE", ["keys", k]) => match find(&state.keys, k) {
            Some(i) => {
                state.keys.remove(i);
                (204, Vec::new(), Vec::new())
            }
            None => not_found(k),
        },
        _ => return None,
    })
}
