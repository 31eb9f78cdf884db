//! `POST /swap-indexes` on the test node: one `indexSwap` task for the whole list, each pair
//! swapped (or, with `rename`, the first renamed to the second), failing as a whole when an
//! index is missing, as Meilisearch's does.

use serde_json::{json, Value};

use super::fake_meili::{task, task_error};
use super::fake_node::{error, Answer, NodeState};
use super::http::Message;

pub fn swap_indexes(state: &mut NodeState, req: &Message) -> Answer {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let Some(list) = body.as_array() else {
        return error(
            400,
            "bad_request",
            "invalid_request",
            "Invalid value type: expected an array",
        );
    };
    let mut swaps = Vec::new();
    for s in list {
        let pair: Vec<String> = s["indexes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if pair.len() != 2 {
            return error(
                400,
                "invalid_swap_indexes",
                "invalid_request",
                "Two indexes must be given for each swap. The list `[]` contains 0 indexes.",
            );
        }
        swaps.push((pair, s["rename"].as_bool().unwrap_or(false)));
    }
    let details = json!({"swaps": swaps.iter().map(|(p, r)| json!({"indexes": p, "rename": r})).collect::<Vec<_>>()});
    task(state, None, "indexSwap", move |s| {
        let missing: Vec<&String> = swaps
            .iter()
            .flat_map(|(pair, rename)| if *rename { &pair[..1] } else { &pair[..] })
            .filter(|uid| !s.indexes.contains_key(*uid))
            .collect();
        if !missing.is_empty() {
            let names: Vec<String> = missing.iter().map(|m| format!("`{m}`")).collect();
            let message = format!("Indexes {} not found.", names.join(", "));
            return (details, task_error("index_not_found", &message));
        }
        if let Some((pair, _)) = swaps
            .iter()
            .find(|(p, r)| *r && s.indexes.contains_key(&p[1]))
        {
            let message = format!("Index `{}` already exists.", pair[1]);
            return (details, task_error("index_already_exists", &message));
        }
        for (pair, rename) in &swaps {
            let a = s.indexes.remove(&pair[0]);
            let b = s.indexes.remove(&pair[1]);
            if let Some(a) = a {
                s.indexes.insert(pair[1].clone(), a);
            }
            if let (Some(b), false) = (b, rename) {
                s.indexes.insert(pair[0].clone(), b);
            }
        }
        (details, None)
    })
}
