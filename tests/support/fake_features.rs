//! `/experimental-features` and `GET /metrics` on the test node, as Meilisearch v1.50 answers
//! them: features read and changed at once (no task), unknown ones refused; metrics only with
//! the `metrics` feature, in Prometheus's text format.

use serde_json::{Map, Value};

use super::fake_node::{error, json_answer, Answer, NodeState};
use super::http::Message;

const FEATURES: [&str; 15] = [
    "metrics",
    "logsRoute",
    "editDocumentsByFunction",
    "containsFilter",
    "dynamicSearchRules",
    "network",
    "getTaskDocumentsRoute",
    "taskQueueCompactionRoute",
    "compositeEmbedders",
    "chatCompletions",
    "multimodal",
    "foreignKeys",
    "disableDocumentsFetchQueue",
    "legacySearch",
    "renderRoute",
];

fn view(state: &NodeState) -> Value {
    let map: Map<String, Value> = FEATURES
        .iter()
        .map(|f| (f.to_string(), Value::Bool(state.features.contains(*f))))
        .collect();
    Value::Object(map)
}

pub fn route(state: &mut NodeState, req: &Message, segs: &[&str]) -> Option<Answer> {
    Some(match (req.method.as_str(), segs) {
        ("GET", ["experimental-features"]) => json_answer(200, view(state)),
        ("PATCH", ["experimental-features"]) => {
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let Some(changes) = body.as_object() else {
                return Some(error(400, "bad_request", "invalid_request", "Invalid JSON"));
            };
            if let Some(unknown) = changes.keys().find(|k| !FEATURES.contains(&k.as_str())) {
                let expected: Vec<String> = FEATURES.iter().map(|f| format!("`{f}`")).collect();
                let message = format!(
                    "Unknown field `{unknown}`: expected one of {}",
                    expected.join(", ")
                );
                return Some(error(400, "bad_request", "invalid_request", &message));
            }
            for (name, on) in changes {
                match on.as_bool() {
                    Some(true) => state.features.insert(name.clone()),
                    _ => state.features.remove(name),
                };
            }
            json_answer(200, view(state))
        }
        ("GET", ["metrics"]) => {
            if !state.features.contains("metrics") {
                return Some(error(
                    400,
                    "feature_not_enabled",
                    "invalid_request",
                    "Getting metrics requires enabling the `metrics` experimental feature. See https://github.com/meilisearch/product/discussions/625",
                ));
            }
            let text = format!(
                "# HELP meilisearch_index_count Meilisearch Index Count\n\
                 # TYPE meilisearch_index_count gauge\n\
                 meilisearch_index_count {}\n",
                state.indexes.len()
            );
            (
                200,
                vec![("content-type".into(), "text/plain; version=0.0.4".into())],
                text.into_bytes(),
            )
        }
        _ => return None,
    })
}
