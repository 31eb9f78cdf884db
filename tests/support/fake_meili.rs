//! The in-memory Meilisearch behind the test node: indexes, documents, settings and tasks,
//! processed at once (a task is `succeeded` or `failed` when first read), except `export`,
//! which pushes to another node over HTTP while the tasks enqueued after it wait. Shapes and
//! errors follow Meilisearch v1.50 for the calls the gateway makes; the real-Meilisearch
//! suite runs the same scenarios against real nodes (`tests/fake_export.rs` for exports, which
//! live in `fake_export_job.rs` and `fake_export_request.rs`).

use serde_json::{json, Map, Value};

use super::fake_delete::delete_by_filter;
use super::fake_export_request::*;
use super::fake_filter::Filter;
use super::fake_node::{error, json_answer, Answer, Index, NodeState};
use super::fake_payload::parse_documents;
use super::fake_search::{browse, fetch, search};
use super::fake_settings::*;
use super::fake_task_list::{list_batches, list_tasks};
use super::http::Message;

pub(super) fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

pub fn param(req: &Message, name: &str) -> Option<String> {
    req.query().split('&').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k == name).then(|| miroir::query_string::percent_decode(v))
    })
}

/// Enqueues and at once runs a task; `run` returns the details and an error, if any. While an
/// export is processed (or the queue is paused) the task waits, as in Meilisearch's queue.
pub(super) fn task(
    state: &mut NodeState,
    index: Option<&str>,
    kind: &str,
    run: impl FnOnce(&mut NodeState) -> (Value, Option<Value>) + Send + 'static,
) -> Answer {
    let uid = state.tasks.len();
    let enqueued = now();
    state.tasks.push(json!({
        "uid": uid, "batchUid": null, "indexUid": index, "status": "enqueued", "type": kind,
        "canceledBy": null, "details": null, "error": null, "duration": null,
        "enqueuedAt": enqueued, "startedAt": null, "finishedAt": null,
    }));
    if state.export_job.is_some() || state.queue_paused {
        state.queue.push_back(Queued::Task {
            uid,
            run: Box::new(run),
        });
    } else {
        run_task(state, uid, run);
    }
    json_answer(
        202,
        json!({"taskUid": uid, "indexUid": index, "status": "enqueued", "type": kind, "enqueuedAt": enqueued}),
    )
}

/// Runs enqueued task `uid` and records its outcome.
pub(super) fn run_task(
    state: &mut NodeState,
    uid: usize,
    run: impl FnOnce(&mut NodeState) -> (Value, Option<Value>),
) {
    let started = now();
    let (details, err) = run(state);
    let t = &mut state.tasks[uid];
    t["status"] = json!(if err.is_some() { "failed" } else { "succeeded" });
    t["batchUid"] = json!(uid);
    t["details"] = details;
    t["error"] = err.unwrap_or(Value::Null);
    t["duration"] = json!("PT0.001S");
    t["startedAt"] = json!(started);
    t["finishedAt"] = json!(now());
}

pub(super) fn task_error(code: &str, message: &str) -> Option<Value> {
    Some(
        json!({"message": message, "code": code, "type": "invalid_request", "link": format!("https://docs.meilisearch.com/errors#{code}")}),
    )
}

pub(super) fn canonical(v: &Value) -> Option<String> {
    match v {
        Value::String(s)
            if !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Some(s.clone())
        }
        Value::Number(n) if !n.is_f64() => Some(n.to_string()),
        _ => None,
    }
}

pub fn route(state: &mut NodeState, req: &Message, segs: &[&str]) -> Answer {
    if let Some(answer) = super::fake_keys::route(state, req, segs) {
        return answer;
    }
    if let Some(answer) = super::fake_features::route(state, req, segs) {
        return answer;
    }
    match (req.method.as_str(), segs) {
        ("POST", ["indexes"]) => {
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let uid = body["uid"].as_str().unwrap_or("").to_string();
            let pk = body["primaryKey"].as_str().map(str::to_string);
            task(state, Some(&uid.clone()), "indexCreation", move |s| {
                if s.indexes.contains_key(&uid) {
                    return (
                        json!({"primaryKey": pk}),
                        task_error(
                            "index_already_exists",
                            &format!("Index `{uid}` already exists."),
                        ),
                    );
                }
                s.indexes.insert(
                    uid,
                    Index {
                        primary_key: pk.clone(),
                        filterable: json!([]),
                        ..Index::default()
                    },
                );
                (json!({"primaryKey": pk}), None)
            })
        }
        ("GET", ["indexes", uid]) => match state.indexes.get(*uid) {
            Some(i) => json_answer(200, index_view(uid, i)),
            None => index_not_found(uid),
        },
        ("PATCH", ["indexes", uid]) => {
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let pk = body["primaryKey"].as_str().map(str::to_string);
            let uid = uid.to_string();
            task(state, Some(&uid.clone()), "indexUpdate", move |s| {
                let details = json!({"primaryKey": pk});
                let Some(i) = s.indexes.get_mut(&uid) else {
                    let message = format!("Index `{uid}` not found.");
                    return (details, task_error("index_not_found", &message));
                };
                match (&i.primary_key, &pk) {
                    (Some(k), Some(p)) if k != p && !i.documents.is_empty() => {
                        let message =
                            format!("Index `{uid}`: Index already has a primary key: `{k}`.");
                        (
                            details,
                            task_error("index_primary_key_already_exists", &message),
                        )
                    }
                    _ => {
                        if pk.is_some() {
                            i.primary_key = pk.clone();
                        }
                        (details, None)
                    }
                }
            })
        }
        ("GET", ["indexes"]) => list_indexes(state, req),
        ("POST", ["indexes", uid, "documents", "fetch"]) => fetch(state, uid, req),
        ("GET", ["indexes", uid, "documents"]) => browse(state, uid, req),
        ("POST", ["indexes", uid, "documents", "delete"]) => delete_by_filter(state, uid, req),
        ("DELETE", ["indexes", uid]) => {
            let uid = uid.to_string();
            task(state, Some(&uid.clone()), "indexDeletion", move |s| {
                let n = s.indexes.remove(&uid).map(|i| i.documents.len());
                match n {
                    Some(n) => (json!({"deletedDocuments": n}), None),
                    None => (
                        json!({"deletedDocuments": 0}),
                        task_error("index_not_found", &format!("Index `{uid}` not found.")),
                    ),
                }
            })
        }
        ("POST" | "PUT", ["indexes", uid, "documents"]) => {
            if req.header("content-type").is_none() {
                return error(415, "missing_content_type", "invalid_request", "A Content-Type header is missing. Accepted values for the Content-Type header are: `application/json`, `application/x-ndjson`, `text/csv`");
            }
            if req.body.is_empty() {
                let format = match req.header("content-type").unwrap_or("") {
                    c if c.starts_with("text/csv") => "csv",
                    c if c.starts_with("application/x-ndjson") => "ndjson",
                    _ => "json",
                };
                return error(
                    400,
                    "missing_payload",
                    "invalid_request",
                    &format!("A {format} payload is missing."),
                );
            }
            let docs = match parse_documents(req) {
                Ok(d) => d,
                Err(e) => return e,
            };
            let uid = uid.to_string();
            let param_pk = param(req, "primaryKey");
            let replace = req.method == "POST";
            let count = docs.len();
            task(
                state,
                Some(&uid.clone()),
                "documentAdditionOrUpdate",
                move |s| {
                    let index = s.indexes.entry(uid).or_insert_with(|| Index {
                        filterable: json!([]),
                        ..Index::default()
                    });
                    let failed = |code: &str, message: &str| {
                        (
                            json!({"receivedDocuments": count, "indexedDocuments": 0}),
                            task_error(code, message),
                        )
                    };
                    let pk = match (&index.primary_key, param_pk) {
                        (Some(k), Some(p)) if *k != p => {
                            let message = format!("Index already has a primary key: `{k}`.");
                            return failed("index_primary_key_already_exists", &message);
                        }
                        (Some(k), _) => k.clone(),
                        (None, Some(p)) => p,
                        // Inferred from the first document: its one field ending with `id`.
                        (None, None) => {
                            let mut guesses: Vec<&String> = docs
                                .first()
                                .into_iter()
                                .flat_map(|d| d.keys())
                                .filter(|k| k.to_lowercase().ends_with("id"))
                                .collect();
                            guesses.sort();
                            match guesses[..] {
                                [one] => one.clone(),
                                [] => return failed("index_primary_key_no_candidate_found", "The primary key inference failed as the engine did not find any field ending with `id` in its name. Please specify the primary key manually using the `primaryKey` query parameter."),
                                [a, b, ..] => {
                                    let message = format!("The primary key inference failed as the engine found {} fields ending with `id` in their names: '{a}' and '{b}'. Please specify the primary key manually using the `primaryKey` query parameter.", guesses.len());
                                    return failed("index_primary_key_multiple_candidates_found", &message);
                                }
                            }
                        }
                    };
                    let mut ids = Vec::new();
                    for d in &docs {
                        match d.get(&pk) {
                            Some(v) => match canonical(v) {
                                Some(id) => ids.push(id),
                                None => {
                                    let message = format!("Document identifier `{v}` is invalid. A document identifier can be of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes.");
                                    return failed("invalid_document_id", &message);
                                }
                            },
                            None => {
                                let message = format!(
                                    "Document doesn't have a `{pk}` attribute: `{}`.",
                                    Value::Object(d.clone())
                                );
                                return failed("missing_document_id", &message);
                            }
                        }
                    }
                    index.primary_key = Some(pk);
                    for (id, d) in ids.into_iter().zip(docs) {
                        let entry = index.documents.get_or_insert(id);
                        if replace {
                            *entry = Value::Object(d);
                        } else if let Value::Object(o) = entry {
                            o.extend(d);
                        }
                    }
                    (
                        json!({"receivedDocuments": count, "indexedDocuments": count}),
                        None,
                    )
                },
            )
        }
        ("GET", ["indexes", uid, "documents", id]) => {
            match state.indexes.get(*uid).and_then(|i| i.documents.get(id)) {
                Some(d) => json_answer(200, d.clone()),
                None if state.indexes.contains_key(*uid) => error(
                    404,
                    "document_not_found",
                    "invalid_request",
                    &format!("Document `{id}` not found."),
                ),
                None => error(
                    404,
                    "index_not_found",
                    "invalid_request",
                    &format!("Index `{uid}` not found."),
                ),
            }
        }
        ("DELETE", ["indexes", uid, "documents", id]) => {
            let (uid, id) = (uid.to_string(), id.to_string());
            task(
                state,
                Some(&uid.clone()),
                "documentDeletion",
                move |s| match s.indexes.get_mut(&uid) {
                    Some(i) => {
                        let n = u64::from(i.documents.remove(&id).is_some());
                        (json!({"providedIds": 1, "deletedDocuments": n}), None)
                    }
                    None => (
                        json!({"providedIds": 1, "deletedDocuments": 0}),
                        task_error("index_not_found", &format!("Index `{uid}` not found.")),
                    ),
                },
            )
        }
        ("POST", ["indexes", uid, "documents", "delete-batch"]) => {
            let ids: Vec<Value> = serde_json::from_slice(&req.body).unwrap_or_default();
            let uid = uid.to_string();
            task(state, Some(&uid.clone()), "documentDeletion", move |s| {
                let n = ids.len();
                match s.indexes.get_mut(&uid) {
                    Some(i) => {
                        let deleted = ids
                            .iter()
                            .filter_map(canonical)
                            .filter(|id| i.documents.remove(id).is_some())
                            .count();
                        (json!({"providedIds": n, "deletedDocuments": deleted}), None)
                    }
                    None => (
                        json!({"providedIds": n, "deletedDocuments": 0}),
                        task_error("index_not_found", &format!("Index `{uid}` not found.")),
                    ),
                }
            })
        }
        ("DELETE", ["indexes", uid, "documents"]) => {
            let uid = uid.to_string();
            task(state, Some(&uid.clone()), "documentDeletion", move |s| {
                let n = s
                    .indexes
                    .get_mut(&uid)
                    .map(|i| std::mem::take(&mut i.documents).len())
                    .unwrap_or(0);
                (
                    json!({"providedIds": 0, "deletedDocuments": n, "originalFilter": null}),
                    None,
                )
            })
        }
        ("GET", ["indexes", uid, "settings"]) => match state.indexes.get(*uid) {
            Some(i) => json_answer(200, settings_of(i)),
            None => index_not_found(uid),
        },
        ("PATCH", ["indexes", uid, "settings"]) => {
            let body = match read_json(req) {
                Ok(b) => b,
                Err(answer) => return answer,
            };
            let Value::Object(patch) = body else {
                let message = format!(
                    "Invalid value type: expected an object, but found {}",
                    found(&body)
                );
                return error(400, "bad_request", "invalid_request", &message);
            };
            update_settings(state, uid, patch, ".")
        }
        ("DELETE", ["indexes", uid, "settings"]) => {
            let patch = SETTINGS
                .iter()
                .map(|s| (s.name.to_string(), Value::Null))
                .collect();
            reset_settings(state, uid, patch)
        }
        (method, ["indexes", uid, "settings", route]) => {
            let Some(setting) = SETTINGS.iter().find(|s| s.route == *route && s.shown) else {
                return (404, Vec::new(), Vec::new());
            };
            let write = if setting.kind.is_struct() {
                "PATCH"
            } else {
                "PUT"
            };
            match method {
                "GET" => match state.indexes.get(*uid) {
                    Some(i) => json_answer(200, settings_of(i)[setting.name].clone()),
                    None => index_not_found(uid),
                },
                "DELETE" => {
                    let patch = Map::from_iter([(setting.name.to_string(), Value::Null)]);
                    reset_settings(state, uid, patch)
                }
                m if m == write => {
                    let body = match read_json(req) {
                        Ok(b) => b,
                        Err(answer) => return answer,
                    };
                    let patch = Map::from_iter([(setting.name.to_string(), body)]);
                    update_settings(state, uid, patch, "")
                }
                _ => (405, Vec::new(), Vec::new()),
            }
        }
        ("GET", ["indexes", uid, "stats"]) => match state.indexes.get(*uid) {
            Some(i) => {
                let mut fields: std::collections::BTreeMap<String, u64> = Default::default();
                for d in i.documents.values() {
                    for k in d.as_object().into_iter().flat_map(|o| o.keys()) {
                        *fields.entry(k.clone()).or_default() += 1;
                    }
                }
                json_answer(
                    200,
                    json!({"numberOfDocuments": i.documents.len(), "rawDocumentDbSize": 100 * i.documents.len(), "avgDocumentSize": 100, "isIndexing": false, "numberOfEmbeddings": 0, "numberOfEmbeddedDocuments": 0, "fieldDistribution": fields}),
                )
            }
            None => error(
                404,
                "index_not_found",
                "invalid_request",
                &format!("Index `{uid}` not found."),
            ),
        },
        ("GET", ["tasks"]) => list_tasks(state, req),
        ("GET", ["batches"]) => list_batches(state, req),
        // This node keeps no webhooks: a change is judged on its body, then not found.
        ("PATCH", ["webhooks", uuid]) => {
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let shape_ok = body.as_object().is_some_and(|o| {
                o.iter().all(|(k, v)| match k.as_str() {
                    "url" => v.is_string() || v.is_null(),
                    "headers" => {
                        v.is_null()
                            || v.as_object()
                                .is_some_and(|h| h.values().all(|x| x.is_string() || x.is_null()))
                    }
                    _ => false,
                })
            });
            if !shape_ok {
                return error(
                    400,
                    "bad_request",
                    "invalid_request",
                    "Invalid webhook body",
                );
            }
            error(
                404,
                "webhook_not_found",
                "invalid_request",
                &format!("Webhook `{uuid}` not found."),
            )
        }
        ("GET", ["tasks", uid]) => match uid
            .parse::<usize>()
            .ok()
            .and_then(|u| state.tasks.get(u))
            .filter(|t| !t.is_null())
        {
            Some(t) => json_answer(200, t.clone()),
            None => error(
                404,
                "task_not_found",
                "invalid_request",
                &format!("Task `{uid}` not found."),
            ),
        },
        ("POST", ["indexes", uid, "search"]) => search(state, uid, req),
        ("GET", ["indexes", uid, "search"]) => super::fake_search::search_get(state, uid, req),
        ("POST", ["multi-search"]) => super::fake_multi::multi_search(state, req, search),
        ("POST", ["swap-indexes"]) => super::fake_swap::swap_indexes(state, req),
        ("DELETE", ["tasks"]) => {
            // Deletes by `uids` only (what the gateway sends); a deleted task stays a null
            // slot, so uids keep their positions.
            let uids: Vec<usize> = param(req, "uids")
                .unwrap_or_default()
                .split(',')
                .filter_map(|u| u.parse().ok())
                .collect();
            task(state, None, "taskDeletion", move |state| {
                let mut deleted = 0;
                for uid in &uids {
                    if let Some(t) = state.tasks.get_mut(*uid).filter(|t| !t.is_null()) {
                        *t = Value::Null;
                        deleted += 1;
                    }
                }
                (
                    json!({"matchedTasks": uids.len(), "deletedTasks": deleted}),
                    None,
                )
            })
        }
        _ => (404, Vec::new(), Vec::new()),
    }
}

pub(super) fn index_not_found(uid: &str) -> Answer {
    error(
        404,
        "index_not_found",
        "invalid_request",
        &format!("Index `{uid}` not found."),
    )
}

/// A JSON body as Meilisearch reads one: `415` without a JSON `Content-Type`, `400
/// missing_payload` when empty, `400 malformed_payload` when not JSON.
pub(super) fn read_json(req: &Message) -> Result<Value, Answer> {
    const ACCEPTED: &str = "Accepted values for the Content-Type header are: `application/json`";
    match req.header("content-type") {
        None => {
            let message = format!("A Content-Type header is missing. {ACCEPTED}");
            return Err(error(
                415,
                "missing_content_type",
                "invalid_request",
                &message,
            ));
        }
        Some(ct) if !ct.starts_with("application/json") => {
            let message = format!("The Content-Type `{ct}` is invalid. {ACCEPTED}");
            return Err(error(
                415,
                "invalid_content_type",
                "invalid_request",
                &message,
            ));
        }
        _ => {}
    }
    if req.body.is_empty() {
        let message = "A json payload is missing.";
        return Err(error(400, "missing_payload", "invalid_request", message));
    }
    serde_json::from_slice(&req.body).map_err(|e| {
        let message = format!("The json payload provided is malformed. `{e}`.");
        error(400, "malformed_payload", "invalid_request", &message)
    })
}

/// The query parameters, decoded, in order (empty values dropped, as Meilisearch does).
pub(super) fn params(req: &Message) -> Vec<(String, String)> {
    req.query()
        .split('&')
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let v = miroir::query_string::percent_decode(v);
            (!k.is_empty() && !v.is_empty()).then(|| (miroir::query_string::percent_decode(k), v))
        })
        .collect()
}

pub(super) fn unknown_param(name: &str, known: &[&str]) -> Answer {
    let list: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
    let message = format!(
        "Unknown parameter `{name}`: expected one of {}",
        list.join(", ")
    );
    error(400, "bad_request", "invalid_request", &message)
}

pub(super) fn positive_integer(name: &str, value: &str, code: &str) -> Result<u64, Answer> {
    value.parse::<u64>().map_err(|_| {
        let message = format!(
            "Invalid value in parameter `{name}`: could not parse `{value}` as a positive integer"
        );
        error(400, code, "invalid_request", &message)
    })
}

/// `GET /indexes`: the indexes by uid, with `offset`, `limit` and `total`.
fn list_indexes(state: &NodeState, req: &Message) -> Answer {
    let (mut offset, mut limit) = (0, 20);
    for (k, v) in params(req) {
        match k.as_str() {
            "offset" => match positive_integer(&k, &v, "invalid_index_offset") {
                Ok(n) => offset = n as usize,
                Err(answer) => return answer,
            },
            "limit" => match positive_integer(&k, &v, "invalid_index_limit") {
                Ok(n) => limit = n as usize,
                Err(answer) => return answer,
            },
            _ => return unknown_param(&k, &["offset", "limit"]),
        }
    }
    let results: Vec<Value> = state
        .indexes
        .iter()
        .skip(offset)
        .take(limit)
        .map(|(uid, i)| index_view(uid, i))
        .collect();
    json_answer(
        200,
        json!({"results": results, "offset": offset, "limit": limit, "total": state.indexes.len()}),
    )
}

fn index_view(uid: &str, index: &Index) -> Value {
    json!({"uid": uid, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z", "primaryKey": index.primary_key})
}

/// The documents of `index` matching `filter` (all for `null`), by id; or the message of an
/// `invalid_document_filter` error (bad syntax, or an attribute that is not filterable).
pub(super) fn select<'a>(
    index: &'a Index,
    filter: &Value,
) -> Result<Vec<(&'a String, &'a Value)>, String> {
    let filter = Filter::parse(filter)?;
    if let Some(field) = filter
        .as_ref()
        .and_then(|f| f.unfilterable(&index.filterable))
    {
        return Err(field.not_filterable(&index.filterable));
    }
    Ok(index
        .documents
        .iter()
        .filter(|(_, d)| filter.as_ref().is_none_or(|f| f.matches(d)))
        .collect())
}

// `POST /export`: the node pushes documents and settings to another node over HTTP, from a
// task processed on its own (the node's other tasks wait behind it, as in Meilisearch).

/// What a deferred task does: its details and error, if any.
type Run = Box<dyn FnOnce(&mut NodeState) -> (Value, Option<Value>) + Send>;

/// A task waiting behind the export being processed.
pub enum Queued {
    Task { uid: usize, run: Run },
    Export { uid: usize, request: ExportRequest },
}

impl Queued {
    pub(super) fn uid(&self) -> usize {
        match self {
            Queued::Task { uid, .. } | Queued::Export { uid, .. } => *uid,
        }
    }
}
