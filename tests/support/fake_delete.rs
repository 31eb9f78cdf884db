//! A test node's deletion of documents by filter, checked as Meilisearch v1.50 checks it.

use serde_json::{json, Value};

use super::fake_export_request::found;
use super::fake_filter::{filter_syntax, Filter};
use super::fake_meili::{read_json, select, task, task_error};
use super::fake_node::{error, Answer, NodeState};
use super::http::Message;

/// `POST /indexes/{uid}/documents/delete`: the filter's syntax is checked at once; the task
/// fails when the index is missing or a field is not filterable.
pub(super) fn delete_by_filter(state: &mut NodeState, uid: &str, req: &Message) -> Answer {
    let body = match read_json(req) {
        Ok(b) => b,
        Err(answer) => return answer,
    };
    let Value::Object(fields) = &body else {
        let message = format!(
            "Invalid value type: expected an object, but found {}",
            found(&body)
        );
        return error(400, "bad_request", "invalid_request", &message);
    };
    if let Some(other) = fields.keys().find(|k| *k != "filter") {
        let message = format!("Unknown field `{other}`: expected one of `filter`");
        return error(400, "bad_request", "invalid_request", &message);
    }
    let Some(filter) = fields.get("filter").cloned() else {
        let message = "Missing field `filter`";
        return error(400, "missing_document_filter", "invalid_request", message);
    };
    let parsed = match filter {
        Value::Null => Err(filter_syntax("String, Array", &filter)),
        _ => Filter::parse(&filter),
    };
    match parsed {
        Err(message) => return error(400, "invalid_document_filter", "invalid_request", &message),
        Ok(None) => {
            let message = "Sending an empty filter is forbidden.";
            return error(400, "invalid_document_filter", "invalid_request", message);
        }
        Ok(Some(_)) => {}
    }
    let uid = uid.to_string();
    let original = filter.to_string();
    task(state, Some(&uid.clone()), "documentDeletion", move |s| {
        let details =
            |n: usize| json!({"providedIds": 0, "deletedDocuments": n, "originalFilter": original});
        let Some(index) = s.indexes.get_mut(&uid) else {
            let message = format!("Index `{uid}` not found.");
            return (details(0), task_error("index_not_found", &message));
        };
        let ids: Vec<String> = match select(index, &filter) {
            Ok(docs) => docs.into_iter().map(|(id, _)| id.clone()).collect(),
            Err(m) => {
                let message = format!("Index `{uid}`: {m}");
                return (details(0), task_error("invalid_document_filter", &message));
            }
        };
        for id in &ids {
            index.documents.remove(id);
        }
        (details(ids.len()), None)
    })
}
