//! `POST /multi-search` on the test node: each query searched as `POST
//! /indexes/{uid}/search` would be, answered in a `results` list with its `indexUid` first,
//! the first failing query failing the whole request (as Meilisearch does). Federated
//! multi-search is not simulated.

use serde_json::{Map, Value};

use super::fake_node::{error, json_answer, Answer, NodeState};
use super::http::Message;

pub type Search = fn(&mut NodeState, &str, &Message) -> Answer;

pub fn multi_search(state: &mut NodeState, req: &Message, search: Search) -> Answer {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    if !body["federation"].is_null() {
        return error(
            501,
            "not_simulated",
            "internal",
            "federated search is not simulated",
        );
    }
    let Some(queries) = body["queries"].as_array() else {
        return error(
            400,
            "missing_queries",
            "invalid_request",
            "Missing field `queries`",
        );
    };
    let mut results = Vec::new();
    for (i, query) in queries.iter().enumerate() {
        let mut query = query.clone();
        let Some(uid) = query
            .as_object_mut()
            .and_then(|q| q.remove("indexUid"))
            .and_then(|u| u.as_str().map(str::to_string))
        else {
            let message = format!("Missing field `indexUid` inside `.queries[{i}]`");
            return error(400, "missing_index_uid", "invalid_request", &message);
        };
        let one = Message {
            body: serde_json::to_vec(&query).unwrap_or_default(),
            ..req.clone()
        };
        let (status, headers, answer) = search(state, &uid, &one);
        if status != 200 {
            // Meilisearch names the failing query in the message.
            let mut e: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
            if let Some(m) = e["message"].as_str() {
                e["message"] = Value::from(format!("Inside `.queries[{i}]`: {m}"));
                return (status, headers, serde_json::to_vec(&e).unwrap_or(answer));
            }
            return (status, headers, answer);
        }
        let answer: Map<String, Value> = serde_json::from_slice(&answer).unwrap_or_default();
        let mut result = Map::new();
        result.insert("indexUid".into(), Value::from(uid));
        result.extend(answer);
        results.push(Value::Object(result));
    }
    json_answer(200, serde_json::json!({ "results": results }))
}
