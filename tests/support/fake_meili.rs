//! The in-memory Meilisearch behind the test node: indexes, documents, settings and tasks,
//! processed at once (a task is `succeeded` or `failed` when first read), except `export`,
//! which pushes to another node over HTTP while the tasks enqueued after it wait. Shapes and
//! errors follow Meilisearch v1.50 for the calls the gateway makes; the real-Meilisearch
//! suite runs the same scenarios against real nodes (`tests/fake_export.rs` for exports).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::fake_filter::{filter_syntax, Filter};
use super::fake_node::{error, json_answer, Answer, Index, NodeState};
use super::http::Message;

fn now() -> String {
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
/// export is processed the task waits behind it, as in Meilisearch's queue.
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
    if state.export_job.is_some() {
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
fn run_task(
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

fn canonical(v: &Value) -> Option<String> {
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

fn parse_documents(req: &Message) -> Result<Vec<Map<String, Value>>, Answer> {
    let ct = req.header("content-type").unwrap_or("");
    let gunzipped;
    let body = match req.header("content-encoding") {
        Some(e) if e.eq_ignore_ascii_case("gzip") => {
            gunzipped = gunzip_stored(&req.body).ok_or_else(|| {
                error(
                    400,
                    "malformed_payload",
                    "invalid_request",
                    "The fake node reads only gzip made of stored blocks (as its exports send).",
                )
            })?;
            &gunzipped[..]
        }
        _ => &req.body[..],
    };
    let docs: Vec<Value> = if ct.starts_with("application/json") {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Array(a)) => a,
            Ok(o @ Value::Object(_)) => vec![o],
            _ => {
                return Err(error(
                    400,
                    "malformed_payload",
                    "invalid_request",
                    "The `json` payload provided is malformed.",
                ))
            }
        }
    } else if ct.starts_with("application/x-ndjson") {
        serde_json::Deserializer::from_slice(body)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()
            .map_err(|_| {
                error(
                    400,
                    "malformed_payload",
                    "invalid_request",
                    "The `ndjson` payload provided is malformed.",
                )
            })?
    } else if ct.starts_with("text/csv") {
        let delimiter = param(req, "csvDelimiter")
            .and_then(|d| d.bytes().next())
            .unwrap_or(b',');
        let mut r = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .from_reader(body);
        let headers = r
            .headers()
            .map_err(|_| error(400, "malformed_payload", "invalid_request", "csv"))?
            .clone();
        let mut out = Vec::new();
        for rec in r.records() {
            let rec = rec.map_err(|_| error(400, "malformed_payload", "invalid_request", "csv"))?;
            let mut o = Map::new();
            for (h, v) in headers.iter().zip(rec.iter()) {
                let (name, number) = match h.rsplit_once(':') {
                    Some((n, "number")) => (n, true),
                    _ => (h, false),
                };
                let value = if v.is_empty() {
                    Value::Null
                } else if number {
                    v.trim()
                        .parse::<i64>()
                        .map(Value::from)
                        .unwrap_or_else(|_| json!(v.trim().parse::<f64>().unwrap_or(0.0)))
                } else {
                    Value::from(v)
                };
                o.insert(name.to_string(), value);
            }
            out.push(Value::Object(o));
        }
        out
    } else {
        return Err(error(
            415,
            "missing_content_type",
            "invalid_request",
            "A Content-Type header is missing.",
        ));
    };
    docs.into_iter()
        .map(|d| match d {
            Value::Object(o) => Ok(o),
            _ => Err(error(500, "internal", "internal", "not a map")),
        })
        .collect()
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

/// A small search: documents containing `q` (all for an empty query) and matching `filter`
/// (checked as Meilisearch checks it: syntax first, then the index, then filterability),
/// ordered by id through a sort rule in the score details; `limit`/`offset` with
/// `estimatedTotalHits`, or `hitsPerPage`/`page` with exhaustive `totalHits`; no hit beyond
/// the index's `pagination.maxTotalHits`.
fn search(state: &mut NodeState, uid: &str, req: &Message) -> Answer {
    if state.search_overloaded {
        return error(
            503,
            "too_many_search_requests",
            "system",
            "Too many search requests running at the same time: 0. Retry after 10s.",
        );
    }
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let filter = match Filter::parse(&body["filter"]) {
        Ok(f) => f,
        Err(message) => return error(400, "invalid_search_filter", "invalid_request", &message),
    };
    let Some(index) = state.indexes.get(uid) else {
        return index_not_found(uid);
    };
    if let Some(f) = &filter {
        if let Some(field) = f.unfilterable(&index.filterable) {
            let message = f.search_not_filterable(uid, field, &index.filterable);
            return error(400, "invalid_search_filter", "invalid_request", &message);
        }
    }
    let sort_fields: Vec<&str> = body["sort"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|r| r.rsplit_once(':').map(|(f, _)| f))
        .filter(|f| !f.starts_with("_geoPoint("))
        .collect();
    if let Some(message) = unsortable(index, &sort_fields) {
        let message = format!("Index `{uid}`: {message}");
        return error(400, "invalid_search_sort", "invalid_request", &message);
    }
    let query = body["q"].as_str().unwrap_or("");
    let q = query.to_lowercase();
    let mut hits: Vec<(&String, &Value)> = index
        .documents
        .iter()
        .filter(|(_, d)| filter.as_ref().is_none_or(|f| f.matches(d)))
        .filter(|(_, d)| q.is_empty() || d.to_string().to_lowercase().contains(&q))
        .collect();
    hits.sort_by(|a, b| a.0.cmp(b.0));
    let total = hits.len();
    let max_total_hits = settings_of(index)["pagination"]["maxTotalHits"]
        .as_u64()
        .unwrap_or(1000) as usize;
    let paged = !body["hitsPerPage"].is_null() || !body["page"].is_null();
    let (skip, take) = if paged {
        let per_page = body["hitsPerPage"].as_u64().unwrap_or(20) as usize;
        let page = body["page"].as_u64().unwrap_or(1) as usize;
        match page {
            0 => (0, 0),
            p => ((p - 1) * per_page, per_page),
        }
    } else {
        (
            body["offset"].as_u64().unwrap_or(0) as usize,
            body["limit"].as_u64().unwrap_or(20) as usize,
        )
    };
    let take = take.min(max_total_hits.saturating_sub(skip));
    let displayed: Option<Vec<Value>> = settings_of(index)["displayedAttributes"]
        .as_array()
        .filter(|d| !d.contains(&json!("*")))
        .cloned();
    let page: Vec<Value> = hits
        .into_iter()
        .skip(skip)
        .take(take)
        .map(|(id, d)| {
            let mut d = d.clone();
            if let (Some(shown), Value::Object(fields)) = (&displayed, &mut d) {
                fields.retain(|k, _| shown.iter().any(|s| s == k));
            }
            if body["showRankingScore"] == true {
                d["_rankingScore"] = json!(1.0);
            }
            if body["showRankingScoreDetails"] == true {
                d["_rankingScoreDetails"] = json!({"id:asc": {"order": 0, "value": id}});
            }
            d
        })
        .collect();
    let request_uid = "01a20000-0000-7000-8000-000000000000";
    if paged {
        let per_page = body["hitsPerPage"].as_u64().unwrap_or(20);
        let total_pages = if per_page == 0 {
            0
        } else {
            (total as u64).div_ceil(per_page)
        };
        json_answer(
            200,
            json!({"hits": page, "query": query, "processingTimeMs": 0, "hitsPerPage": per_page, "page": body["page"].as_u64().unwrap_or(1), "totalPages": total_pages, "totalHits": total, "requestUid": request_uid}),
        )
    } else {
        json_answer(
            200,
            json!({"hits": page, "query": query, "processingTimeMs": 0, "limit": body["limit"].as_u64().unwrap_or(20), "offset": skip, "estimatedTotalHits": total, "requestUid": request_uid}),
        )
    }
}

/// How a setting's value is checked and kept.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// `displayedAttributes`, `searchableAttributes`: strings; a reset shows `["*"]`.
    Wildcard,
    /// Strings kept sorted and deduplicated.
    Set,
    /// `rankingRules`: strings, each a rule.
    Rules,
    /// Any array (`filterableAttributes` rules, `foreignKeys`, `localizedAttributes`).
    Array,
    /// `synonyms`: arrays of strings by word, kept sorted by word.
    Synonyms,
    /// A string, one of these when any are given.
    Str(&'static [&'static str]),
    /// An object whose fields (in this order) are updated one by one.
    Struct(&'static [&'static str]),
    /// An object whose entries are updated one by one (`embedders`).
    Entries,
    /// Any object, replaced.
    Object,
    UInt,
    Bool,
}

impl Kind {
    /// Objects have their own route answering `PATCH`; the others answer `PUT`.
    fn is_struct(self) -> bool {
        matches!(self, Kind::Struct(_) | Kind::Entries)
    }
}

struct Setting {
    name: &'static str,
    route: &'static str,
    code: &'static str,
    kind: Kind,
    /// Shown by `GET /indexes/{uid}/settings` (the others need experimental features).
    shown: bool,
    default: &'static str,
}

const fn setting(
    name: &'static str,
    route: &'static str,
    code: &'static str,
    kind: Kind,
    default: &'static str,
) -> Setting {
    Setting {
        name,
        route,
        code,
        kind,
        shown: true,
        default,
    }
}

/// Meilisearch v1.50's settings, in its order, with their defaults.
const SETTINGS: [Setting; 22] = [
    setting(
        "displayedAttributes",
        "displayed-attributes",
        "invalid_settings_displayed_attributes",
        Kind::Wildcard,
        r#"["*"]"#,
    ),
    setting(
        "searchableAttributes",
        "searchable-attributes",
        "invalid_settings_searchable_attributes",
        Kind::Wildcard,
        r#"["*"]"#,
    ),
    setting(
        "filterableAttributes",
        "filterable-attributes",
        "invalid_settings_filterable_attributes",
        Kind::Array,
        "[]",
    ),
    setting(
        "sortableAttributes",
        "sortable-attributes",
        "invalid_settings_sortable_attributes",
        Kind::Set,
        "[]",
    ),
    Setting {
        shown: false,
        ..setting(
            "foreignKeys",
            "foreign-keys",
            "invalid_settings_foreign_keys",
            Kind::Array,
            "[]",
        )
    },
    setting(
        "rankingRules",
        "ranking-rules",
        "invalid_settings_ranking_rules",
        Kind::Rules,
        r#"["words","typo","proximity","attributeRank","sort","wordPosition","exactness"]"#,
    ),
    setting(
        "stopWords",
        "stop-words",
        "invalid_settings_stop_words",
        Kind::Set,
        "[]",
    ),
    setting(
        "nonSeparatorTokens",
        "non-separator-tokens",
        "invalid_settings_non_separator_tokens",
        Kind::Set,
        "[]",
    ),
    setting(
        "separatorTokens",
        "separator-tokens",
        "invalid_settings_separator_tokens",
        Kind::Set,
        "[]",
    ),
    setting(
        "dictionary",
        "dictionary",
        "invalid_settings_dictionary",
        Kind::Set,
        "[]",
    ),
    setting(
        "synonyms",
        "synonyms",
        "invalid_settings_synonyms",
        Kind::Synonyms,
        "{}",
    ),
    setting(
        "distinctAttribute",
        "distinct-attribute",
        "invalid_settings_distinct_attribute",
        Kind::Str(&[]),
        "null",
    ),
    setting(
        "proximityPrecision",
        "proximity-precision",
        "invalid_settings_proximity_precision",
        Kind::Str(&["byWord", "byAttribute"]),
        r#""byWord""#,
    ),
    setting(
        "typoTolerance",
        "typo-tolerance",
        "invalid_settings_typo_tolerance",
        Kind::Struct(&[
            "enabled",
            "minWordSizeForTypos",
            "disableOnWords",
            "disableOnAttributes",
            "disableOnNumbers",
        ]),
        r#"{"enabled":true,"minWordSizeForTypos":{"oneTypo":5,"twoTypos":9},"disableOnWords":[],"disableOnAttributes":[],"disableOnNumbers":false}"#,
    ),
    setting(
        "faceting",
        "faceting",
        "invalid_settings_faceting",
        Kind::Struct(&["maxValuesPerFacet", "sortFacetValuesBy"]),
        r#"{"maxValuesPerFacet":100,"sortFacetValuesBy":{"*":"alpha"}}"#,
    ),
    setting(
        "pagination",
        "pagination",
        "invalid_settings_pagination",
        Kind::Struct(&["maxTotalHits"]),
        r#"{"maxTotalHits":1000}"#,
    ),
    setting(
        "embedders",
        "embedders",
        "invalid_settings_embedders",
        Kind::Entries,
        "{}",
    ),
    setting(
        "searchCutoffMs",
        "search-cutoff-ms",
        "invalid_settings_search_cutoff_ms",
        Kind::UInt,
        "null",
    ),
    setting(
        "localizedAttributes",
        "localized-attributes",
        "invalid_settings_localized_attributes",
        Kind::Array,
        "null",
    ),
    setting(
        "facetSearch",
        "facet-search",
        "invalid_settings_facet_search",
        Kind::Bool,
        "true",
    ),
    setting(
        "prefixSearch",
        "prefix-search",
        "invalid_settings_prefix_search",
        Kind::Str(&["indexingTime", "disabled"]),
        r#""indexingTime""#,
    ),
    Setting {
        shown: false,
        ..setting(
            "chat",
            "chat",
            "invalid_settings_index_chat",
            Kind::Object,
            "null",
        )
    },
];

impl Setting {
    fn default_value(&self) -> Value {
        serde_json::from_str(self.default).expect("default setting")
    }

    /// Checks a value sent for the setting (`null` resets it) and returns it as Meilisearch
    /// keeps and reports it; `at` is where the value stands in the body (`.name`, or empty
    /// on the setting's own route), for the error messages.
    fn check(&self, value: &Value, at: &str) -> Result<Value, Answer> {
        let wrong = |path: &str, what: &str, v: &Value| {
            let place = if path.is_empty() {
                String::new()
            } else {
                format!(" at `{path}`")
            };
            let message = format!(
                "Invalid value type{place}: expected {what}, but found {}",
                found(v)
            );
            error(400, self.code, "invalid_request", &message)
        };
        let strings = |v: &Value| -> Result<Vec<String>, Answer> {
            let Value::Array(items) = v else {
                return Err(wrong(at, "an array", v));
            };
            items
                .iter()
                .enumerate()
                .map(|(i, x)| match x {
                    Value::String(s) => Ok(s.clone()),
                    x => Err(wrong(&format!("{at}[{i}]"), "a string", x)),
                })
                .collect()
        };
        if value.is_null() {
            return Ok(match self.kind {
                Kind::Wildcard => json!(["*"]),
                _ => Value::Null,
            });
        }
        Ok(match self.kind {
            Kind::Wildcard => json!(strings(value)?),
            Kind::Set => {
                let mut s = strings(value)?;
                s.sort();
                s.dedup();
                json!(s)
            }
            Kind::Rules => {
                let rules = strings(value)?;
                const NAMED: [&str; 8] = [
                    "words",
                    "typo",
                    "proximity",
                    "attribute",
                    "attributeRank",
                    "wordPosition",
                    "sort",
                    "exactness",
                ];
                for (i, r) in rules.iter().enumerate() {
                    let custom = r
                        .rsplit_once(':')
                        .is_some_and(|(f, o)| !f.is_empty() && (o == "asc" || o == "desc"));
                    if !custom && !NAMED.contains(&r.as_str()) {
                        let message = format!("Invalid value at `{at}[{i}]`: `{r}` ranking rule is invalid. Valid ranking rules are words, typo, sort, proximity, attribute, exactness and custom ranking rules.");
                        return Err(error(400, self.code, "invalid_request", &message));
                    }
                }
                json!(rules)
            }
            Kind::Array if value.is_array() => value.clone(),
            Kind::Array => return Err(wrong(at, "an array", value)),
            Kind::Synonyms => {
                let Value::Object(words) = value else {
                    return Err(wrong(at, "an object", value));
                };
                let mut out: Vec<(String, Value)> = Vec::new();
                for (word, list) in words {
                    out.push((word.clone(), json!(strings(list)?)));
                }
                out.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Object(out.into_iter().collect())
            }
            Kind::Str(allowed) => {
                let Value::String(s) = value else {
                    return Err(wrong(at, "a string", value));
                };
                if !allowed.is_empty() && !allowed.contains(&s.as_str()) {
                    let list: Vec<String> = allowed.iter().map(|a| format!("`{a}`")).collect();
                    let place = if at.is_empty() {
                        String::new()
                    } else {
                        format!(" at `{at}`")
                    };
                    let message = format!(
                        "Unknown value `{s}`{place}: expected one of {}",
                        list.join(", ")
                    );
                    return Err(error(400, self.code, "invalid_request", &message));
                }
                value.clone()
            }
            Kind::Struct(fields) => {
                let Value::Object(given) = value else {
                    return Err(wrong(at, "an object", value));
                };
                ordered(given, fields)
            }
            Kind::Entries | Kind::Object if value.is_object() => value.clone(),
            Kind::Entries | Kind::Object => return Err(wrong(at, "an object", value)),
            Kind::UInt if value.is_u64() => value.clone(),
            Kind::UInt => return Err(wrong(at, "a positive integer", value)),
            Kind::Bool if value.is_boolean() => value.clone(),
            Kind::Bool => return Err(wrong(at, "a boolean", value)),
        })
    }
}

/// An object's fields in a struct's order (unknown ones last), sets sorted, maps by key.
fn ordered(given: &Map<String, Value>, fields: &[&str]) -> Value {
    let mut out = Map::new();
    let known = fields.iter().filter_map(|f| given.get_key_value(*f));
    let others = given.iter().filter(|(k, _)| !fields.contains(&k.as_str()));
    for (k, v) in known.chain(others) {
        let v = match (k.as_str(), v) {
            ("minWordSizeForTypos", Value::Object(o)) => ordered(o, &["oneTypo", "twoTypos"]),
            ("disableOnWords" | "disableOnAttributes", Value::Array(a)) => {
                let mut a = a.clone();
                a.sort_by_key(|x| x.to_string());
                a.dedup();
                Value::Array(a)
            }
            ("sortFacetValuesBy", Value::Object(o)) => {
                let mut entries: Vec<_> = o.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Object(entries.into_iter().collect())
            }
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    Value::Object(out)
}

/// Updates a struct setting field by field: `null` resets a field, an object updates the
/// fields of a nested struct (not of a map such as `sortFacetValuesBy`).
fn merge_struct(current: &mut Map<String, Value>, patch: &Map<String, Value>, default: &Value) {
    for (k, v) in patch {
        match (v, current.get_mut(k), &default[k]) {
            (Value::Null, _, d) => {
                current.insert(k.clone(), d.clone());
            }
            (Value::Object(p), Some(Value::Object(c)), d @ Value::Object(_))
                if k != "sortFacetValuesBy" =>
            {
                merge_struct(c, p, d);
            }
            _ => {
                current.insert(k.clone(), v.clone());
            }
        }
    }
}

/// A reset (`DELETE` of the settings or of one): unlike a change, it does not create a
/// missing index but fails with `index_not_found`, as Meilisearch's does.
fn reset_settings(state: &mut NodeState, uid: &str, patch: Map<String, Value>) -> Answer {
    if !state.indexes.contains_key(uid) {
        let details: Map<String, Value> = SETTINGS
            .iter()
            .filter_map(|s| Some((s.name.to_string(), patch.get(s.name)?.clone())))
            .map(|(k, v)| match (k.as_str(), v) {
                ("displayedAttributes" | "searchableAttributes", Value::Null) => (k, json!(["*"])),
                (_, v) => (k, v),
            })
            .collect();
        let message = format!("Index `{uid}` not found.");
        return task(state, Some(uid), "settingsUpdate", move |_| {
            (
                Value::Object(details),
                task_error("index_not_found", &message),
            )
        });
    }
    update_settings(state, uid, patch, "")
}

/// A `settingsUpdate` for the settings of `patch` (by name; `null` resets), creating the index
/// when missing, as Meilisearch does; the details list the settings sent, in Meilisearch's
/// order. `at` prefixes the value's place in errors (`.` for the whole settings object).
fn update_settings(
    state: &mut NodeState,
    uid: &str,
    patch: Map<String, Value>,
    at: &str,
) -> Answer {
    if let Some(other) = patch
        .keys()
        .find(|k| !SETTINGS.iter().any(|s| s.name == k.as_str()))
    {
        let names: Vec<String> = SETTINGS.iter().map(|s| format!("`{}`", s.name)).collect();
        let message = format!(
            "Unknown field `{other}`: expected one of {}",
            names.join(", ")
        );
        return error(400, "bad_request", "invalid_request", &message);
    }
    let mut changes: Vec<(&'static Setting, Value)> = Vec::new();
    for s in &SETTINGS {
        if let Some(v) = patch.get(s.name) {
            let place = if at.is_empty() {
                String::new()
            } else {
                format!("{at}{}", s.name)
            };
            match s.check(v, &place) {
                Ok(v) => changes.push((s, v)),
                Err(answer) => return answer,
            }
        }
    }
    let details = Value::Object(
        changes
            .iter()
            .map(|(s, v)| (s.name.to_string(), v.clone()))
            .collect(),
    );
    let uid = uid.to_string();
    task(state, Some(&uid.clone()), "settingsUpdate", move |st| {
        let index = st.indexes.entry(uid).or_default();
        for (s, v) in changes {
            if s.name == "filterableAttributes" {
                index.filterable = if v.is_null() { json!([]) } else { v };
                continue;
            }
            let reset = v.is_null() || (s.kind == Kind::Wildcard && v == json!(["*"]));
            if reset {
                index.settings.remove(s.name);
                continue;
            }
            let merged = match (s.kind, v) {
                (Kind::Struct(_), Value::Object(p)) => {
                    let default = s.default_value();
                    let mut current = match index.settings.get(s.name) {
                        Some(Value::Object(c)) => c.clone(),
                        _ => default.as_object().cloned().unwrap_or_default(),
                    };
                    merge_struct(&mut current, &p, &default);
                    Value::Object(current)
                }
                (Kind::Entries, Value::Object(p)) => {
                    let mut current = index
                        .settings
                        .get(s.name)
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    for (k, e) in p {
                        if e.is_null() {
                            current.remove(&k);
                        } else {
                            current.insert(k, e);
                        }
                    }
                    Value::Object(current)
                }
                (_, v) => v,
            };
            index.settings.insert(s.name.to_string(), merged);
        }
        (details, None)
    })
}

/// The settings a node reports (and an export sends), as `GET /indexes/{uid}/settings`
/// shows them: every setting, its default unless set.
pub fn settings_of(index: &Index) -> Value {
    let mut out = Map::new();
    for s in SETTINGS.iter().filter(|s| s.shown) {
        let mut v = if s.name == "filterableAttributes" {
            match &index.filterable {
                Value::Null => json!([]),
                f => f.clone(),
            }
        } else {
            index
                .settings
                .get(s.name)
                .cloned()
                .unwrap_or_else(|| s.default_value())
        };
        // Facet values are sorted alphabetically unless said otherwise.
        if let Some(Value::Object(by)) = v.pointer_mut("/sortFacetValuesBy") {
            if !by.contains_key("*") {
                let mut entries: Vec<_> = by.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                entries.push(("*".to_string(), json!("alpha")));
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                *by = entries.into_iter().collect();
            }
        }
        out.insert(s.name.to_string(), v);
    }
    Value::Object(out)
}

fn index_not_found(uid: &str) -> Answer {
    error(
        404,
        "index_not_found",
        "invalid_request",
        &format!("Index `{uid}` not found."),
    )
}

/// A JSON body as Meilisearch reads one: `415` without a JSON `Content-Type`, `400
/// missing_payload` when empty, `400 malformed_payload` when not JSON.
fn read_json(req: &Message) -> Result<Value, Answer> {
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
fn params(req: &Message) -> Vec<(String, String)> {
    req.query()
        .split('&')
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let v = miroir::query_string::percent_decode(v);
            (!k.is_empty() && !v.is_empty()).then(|| (miroir::query_string::percent_decode(k), v))
        })
        .collect()
}

fn unknown_param(name: &str, known: &[&str]) -> Answer {
    let list: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
    let message = format!(
        "Unknown parameter `{name}`: expected one of {}",
        list.join(", ")
    );
    error(400, "bad_request", "invalid_request", &message)
}

fn positive_integer(name: &str, value: &str, code: &str) -> Result<u64, Answer> {
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

/// `GET /indexes/{uid}/documents`: `offset`, `limit`, `fields`, `ids` and `filter` as query
/// parameters; every field of the documents (`displayedAttributes` does not apply).
fn browse(state: &NodeState, uid: &str, req: &Message) -> Answer {
    const KNOWN: [&str; 8] = [
        "offset",
        "limit",
        "fields",
        "retrieveVectors",
        "ids",
        "filter",
        "sort",
        "useNetwork",
    ];
    let mut body = Map::new();
    for (k, v) in params(req) {
        match k.as_str() {
            "offset" | "limit" => {
                let code = format!("invalid_document_{k}");
                match positive_integer(&k, &v, &code) {
                    Ok(n) => body.insert(k, json!(n)),
                    Err(answer) => return answer,
                };
            }
            "fields" | "ids" => {
                body.insert(k, json!(v.split(',').map(str::trim).collect::<Vec<_>>()));
            }
            "filter" => {
                body.insert(k, json!(v));
            }
            k if KNOWN.contains(&k) => {}
            _ => return unknown_param(&k, &KNOWN),
        }
    }
    fetch_documents(state, uid, &Value::Object(body))
}

/// `POST /indexes/{uid}/documents/delete`: the filter's syntax is checked at once; the task
/// fails when the index is missing or a field is not filterable.
fn delete_by_filter(state: &mut NodeState, uid: &str, req: &Message) -> Answer {
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

/// `GET /tasks`: newest first (oldest first with `reverse=true`), filtered by `uids`,
/// `batchUids`, `canceledBy`, `types`, `statuses`, `indexUids` and the date bounds; `from` is
/// the first uid to show, `next` the `from` of the next page, `total` counts every match.
/// A node's batches: here one per started task, filtered and paged as its tasks are.
fn list_batches(state: &NodeState, req: &Message) -> Answer {
    let answer = list_tasks(state, req);
    if answer.0 != 200 {
        return answer;
    }
    let mut page: Value = serde_json::from_slice(&answer.2).unwrap_or(Value::Null);
    let batches: Vec<Value> = page["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["batchUid"].is_u64())
        .map(|t| {
            let one = |v: &Value| match v.as_str() {
                Some(k) => json!({ k: 1 }),
                None => json!({}),
            };
            json!({
                "uid": t["batchUid"], "progress": null, "details": t["details"],
                "stats": {"totalNbTasks": 1, "status": one(&t["status"]), "types": one(&t["type"]), "indexUids": one(&t["indexUid"])},
                "duration": t["duration"], "startedAt": t["startedAt"], "finishedAt": t["finishedAt"],
                "batchStrategy": "batched all enqueued tasks",
            })
        })
        .collect();
    page["results"] = Value::Array(batches);
    json_answer(200, page)
}

fn list_tasks(state: &NodeState, req: &Message) -> Answer {
    const KNOWN: [&str; 15] = [
        "limit",
        "from",
        "reverse",
        "batchUids",
        "uids",
        "canceledBy",
        "types",
        "statuses",
        "indexUids",
        "afterEnqueuedAt",
        "beforeEnqueuedAt",
        "afterStartedAt",
        "beforeStartedAt",
        "afterFinishedAt",
        "beforeFinishedAt",
    ];
    const STATUSES: [&str; 5] = ["enqueued", "processing", "succeeded", "failed", "canceled"];
    const TYPES: [&str; 18] = [
        "documentAdditionOrUpdate",
        "documentEdition",
        "documentDeletion",
        "settingsUpdate",
        "indexCreation",
        "indexDeletion",
        "indexUpdate",
        "indexSwap",
        "taskCancelation",
        "taskDeletion",
        "dumpCreation",
        "snapshotCreation",
        "export",
        "upgradeDatabase",
        "indexCompaction",
        "networkTopologyChange",
        "dsrUpdate",
        "dsrClear",
    ];
    let bad = |code: &str, message: String| error(400, code, "invalid_request", &message);
    let quoted = |l: &[&str]| {
        l.iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (mut limit, mut from, mut reverse) = (20u64, None::<u64>, false);
    // (task field, accepted values); `None` for `*`.
    let mut lists: Vec<(&str, Option<Vec<Value>>)> = Vec::new();
    // (task field, after?, bound)
    let mut dates: Vec<(&str, bool, time::OffsetDateTime)> = Vec::new();
    for (k, v) in params(req) {
        let items: Vec<&str> = v.split(',').map(str::trim).collect();
        // Where an item is, in errors: `uids` alone, `uids[1]` in a list.
        let at = |i: usize| {
            if items.len() > 1 {
                format!("{k}[{i}]")
            } else {
                k.clone()
            }
        };
        let star = items.contains(&"*");
        match k.as_str() {
            "limit" | "from" => {
                let code = format!("invalid_task_{k}");
                match positive_integer(&k, &v, &code) {
                    Ok(n) if k == "limit" => limit = n,
                    Ok(n) => from = Some(n),
                    Err(answer) => return answer,
                }
            }
            "reverse" => match v.as_str() {
                "true" => reverse = true,
                "false" => reverse = false,
                _ => {
                    let message = format!("Invalid value in parameter `reverse`: could not parse `{v}` as a boolean, expected either `true` or `false`");
                    return bad("invalid_task_reverse", message);
                }
            },
            "uids" | "batchUids" | "canceledBy" => {
                let (field, code) = match k.as_str() {
                    "uids" => ("uid", "invalid_task_uids"),
                    "batchUids" => ("batchUid", "invalid_task_batch_uids"),
                    _ => ("canceledBy", "invalid_task_canceled_by"),
                };
                if star && items.len() == 1 {
                    continue;
                }
                let mut wanted = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match positive_integer(&at(i), item, code) {
                        Ok(n) => wanted.push(json!(n)),
                        Err(answer) => return answer,
                    }
                }
                lists.push((field, Some(wanted)));
            }
            "statuses" | "types" => {
                let (field, code, allowed, what, known) = if k == "statuses" {
                    (
                        "status",
                        "invalid_task_statuses",
                        &STATUSES[..],
                        "task status",
                        "statuses",
                    )
                } else {
                    (
                        "type",
                        "invalid_task_types",
                        &TYPES[..],
                        "task type",
                        "types",
                    )
                };
                if let Some((i, item)) = items
                    .iter()
                    .enumerate()
                    .find(|(_, x)| **x != "*" && !allowed.contains(x))
                {
                    let message = format!(
                        "Invalid value in parameter `{}`: `{item}` is not a valid {what}. Available {known} are {}.",
                        at(i),
                        quoted(allowed)
                    );
                    return bad(code, message);
                }
                lists.push((
                    field,
                    (!star).then(|| items.iter().map(|x| json!(x)).collect()),
                ));
            }
            "indexUids" => {
                if let Some((i, item)) = items
                    .iter()
                    .enumerate()
                    .find(|(_, x)| **x != "*" && !valid_uid(x))
                {
                    let message = format!("Invalid value in parameter `{}`: `{item}` is not a valid index uid. Index uid can be an integer or a string containing only alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 512 bytes.", at(i));
                    return bad("invalid_index_uid", message);
                }
                lists.push((
                    "indexUid",
                    (!star).then(|| items.iter().map(|x| json!(x)).collect()),
                ));
            }
            name if KNOWN.contains(&name) => {
                let after = name.starts_with("after");
                let field = if name.ends_with("EnqueuedAt") {
                    "enqueuedAt"
                } else if name.ends_with("StartedAt") {
                    "startedAt"
                } else {
                    "finishedAt"
                };
                if v == "*" {
                    continue;
                }
                match task_date(&v, after) {
                    Some(d) => dates.push((field, after, d)),
                    None => {
                        let snake: String = name
                            .chars()
                            .flat_map(|c| {
                                if c.is_ascii_uppercase() {
                                    vec!['_', c.to_ascii_lowercase()]
                                } else {
                                    vec![c]
                                }
                            })
                            .collect();
                        let message = format!("Invalid value in parameter `{name}`: `{v}` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format.");
                        return bad(&format!("invalid_task_{snake}"), message);
                    }
                }
            }
            _ => return unknown_param(&k, &KNOWN),
        }
    }
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    let matching: Vec<&Value> = state
        .tasks
        .iter()
        .filter(|t| !t.is_null())
        .filter(|t| {
            lists
                .iter()
                .all(|(field, wanted)| wanted.as_ref().is_none_or(|w| w.contains(&t[*field])))
                && dates.iter().all(|(field, after, bound)| {
                    t[*field]
                        .as_str()
                        .and_then(|d| time::OffsetDateTime::parse(d, rfc3339).ok())
                        .is_some_and(|d| if *after { d > *bound } else { d < *bound })
                })
        })
        .collect();
    let total = matching.len();
    let mut page: Vec<&Value> = if reverse {
        matching
            .into_iter()
            .filter(|t| from.is_none_or(|f| t["uid"].as_u64().unwrap() >= f))
            .collect()
    } else {
        matching
            .into_iter()
            .rev()
            .filter(|t| from.is_none_or(|f| t["uid"].as_u64().unwrap() <= f))
            .collect()
    };
    let next = page.get(limit as usize).map(|t| t["uid"].clone());
    page.truncate(limit as usize);
    let first = page.first().map(|t| t["uid"].clone());
    json_answer(
        200,
        json!({"results": page, "total": total, "limit": limit, "from": first, "next": next}),
    )
}

/// A task date bound as Meilisearch reads it: RFC 3339, or a day (the next day's start for an
/// `after` bound).
fn task_date(v: &str, after: bool) -> Option<time::OffsetDateTime> {
    if let Ok(d) = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339) {
        return Some(d);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(v, &format).ok()?;
    let start = day.with_time(time::Time::MIDNIGHT).assume_utc();
    Some(if after {
        start + time::Duration::days(1)
    } else {
        start
    })
}

/// `POST /indexes/{uid}/documents/fetch`: every field of the documents matching `filter`
/// (`displayedAttributes` does not apply), `total` counting all matches.
fn fetch(state: &NodeState, uid: &str, req: &Message) -> Answer {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    fetch_documents(state, uid, &body)
}

/// Documents by `filter`, `ids`, `offset`, `limit` and `fields` (of a fetch body, or of
/// `GET /documents` parameters).
fn fetch_documents(state: &NodeState, uid: &str, body: &Value) -> Answer {
    let Some(index) = state.indexes.get(uid) else {
        return index_not_found(uid);
    };
    let mut docs = match select(index, &body["filter"]) {
        Ok(d) => d,
        Err(message) => return error(400, "invalid_document_filter", "invalid_request", &message),
    };
    if let Some(ids) = body["ids"].as_array() {
        let ids: Vec<String> = ids.iter().filter_map(canonical).collect();
        docs.retain(|(id, _)| ids.contains(id));
    }
    if let Some(rules) = body["sort"].as_array() {
        let rules: Vec<(&str, bool)> = rules
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|r| r.rsplit_once(':').map(|(f, d)| (f, d == "asc")))
            .collect();
        let fields: Vec<&str> = rules.iter().map(|r| r.0).collect();
        if let Some(message) = unsortable(index, &fields) {
            return error(400, "invalid_document_sort", "invalid_request", &message);
        }
        // As a node: numbers, then strings, each in the rule's direction; missing values last.
        docs.sort_by(|(_, a), (_, b)| {
            for (field, asc) in &rules {
                let key = |d: &Value| match d.get(*field) {
                    Some(Value::Number(n)) => (0, n.as_f64().unwrap_or(0.0), String::new()),
                    Some(Value::String(s)) => (1, 0.0, s.to_lowercase()),
                    _ => (2, 0.0, String::new()),
                };
                let (ka, kb) = (key(a), key(b));
                let within = ka.1.total_cmp(&kb.1).then_with(|| ka.2.cmp(&kb.2));
                let within = if *asc { within } else { within.reverse() };
                let o = ka.0.cmp(&kb.0).then(within);
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        });
    }
    let offset = body["offset"].as_u64().unwrap_or(0) as usize;
    let limit = body["limit"].as_u64().unwrap_or(20) as usize;
    let fields: Option<Vec<&str>> = body["fields"]
        .as_array()
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .filter(|f: &Vec<&str>| !f.contains(&"*"));
    let total = docs.len();
    let results: Vec<Value> = docs
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|(_, d)| match (&fields, d) {
            (Some(f), Value::Object(o)) => Value::Object(
                o.iter()
                    .filter(|(k, _)| f.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            _ => d.clone(),
        })
        .collect();
    json_answer(
        200,
        json!({"results": results, "offset": offset, "limit": limit, "total": total}),
    )
}

/// A node's message for the first of `fields` that `index` cannot sort by.
fn unsortable(index: &Index, fields: &[&str]) -> Option<String> {
    let mut sortable: Vec<&str> = index
        .settings
        .get("sortableAttributes")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let field = fields.iter().find(|f| !sortable.contains(f))?;
    sortable.sort_unstable();
    let available = if sortable.is_empty() {
        "This index does not have configured sortable attributes.".to_string()
    } else {
        format!(
            "Available sortable attributes are: `{}`.",
            sortable.join(", ")
        )
    };
    Some(format!("Attribute `{field}` is not sortable. {available}"))
}

/// The documents of `index` matching `filter` (all for `null`), by id; or the message of an
/// `invalid_document_filter` error (bad syntax, or an attribute that is not filterable).
fn select<'a>(index: &'a Index, filter: &Value) -> Result<Vec<(&'a String, &'a Value)>, String> {
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
    fn uid(&self) -> usize {
        match self {
            Queued::Task { uid, .. } | Queued::Export { uid, .. } => *uid,
        }
    }
}

/// The export being processed, stopped by a cancelation or when the node stops.
pub struct ExportJob {
    pub uid: usize,
    pub request: ExportRequest,
    pub handle: tokio::task::AbortHandle,
}

/// A `POST /export` body, validated.
#[derive(Clone)]
pub struct ExportRequest {
    url: String,
    api_key: Option<String>,
    payload_size: Option<u64>,
    /// `filter` and `overrideSettings` by index pattern, in pattern order.
    indexes: BTreeMap<String, (Value, bool)>,
}

/// How deserr names a value in its errors.
fn found(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(_) => format!("a boolean: `{v}`"),
        Value::Number(n) if n.is_u64() => format!("a positive integer: `{v}`"),
        Value::Number(n) if n.is_i64() => format!("a negative integer: `{v}`"),
        Value::Number(_) => format!("a number: `{v}`"),
        Value::String(_) => format!("a string: `{v}`"),
        Value::Array(_) => format!("an array: `{v}`"),
        Value::Object(_) => format!("an object: `{v}`"),
    }
}

fn valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 400
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn pattern_matches(pattern: &str, uid: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => uid.starts_with(prefix),
        None => pattern == uid,
    }
}

/// A byte size as Meilisearch reads `payloadSize` (`"24MiB"`, `"10 MB"`, `"512kb"`: a
/// lowercase `b` counts bits).
fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let Some(first) = s.chars().next() else {
        return Err("no value can be found".to_string());
    };
    if !first.is_ascii_digit() {
        return Err(format!("the character {first:?} is not a number"));
    }
    let digits = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let value: f64 = s[..digits]
        .parse()
        .map_err(|_| "the character '.' is not a number".to_string())?;
    let unit = s[digits..].trim_start();
    let mut chars = unit.chars();
    let power = match chars.next() {
        None => return Ok(value.ceil() as u64),
        Some(c) => match c.to_ascii_uppercase() {
            'B' => 0,
            'K' => 1,
            'M' => 2,
            'G' => 3,
            'T' => 4,
            'P' => 5,
            'E' => 6,
            _ => {
                return Err(format!(
                    "the character {c:?} is incorrect ('B', 'K', 'M', 'G', 'T', 'P', 'E' or no character or no character is expected)"
                ))
            }
        },
    };
    let rest: String = chars.collect();
    let (base, rest) = match rest.strip_prefix(['i', 'I']) {
        Some(r) if power > 0 => (1024f64, r),
        _ => (1000f64, rest.as_str()),
    };
    let bits = match (power, unit.chars().next(), rest) {
        (0, Some('b'), "") => true,
        (0, _, "") => false,
        (_, _, "") | (_, _, "B") => false,
        (_, _, "b") => true,
        (_, _, r) => {
            return Err(format!(
                "the character {:?} is incorrect ('B' or 'b' or no character is expected)",
                r.chars().next().unwrap()
            ))
        }
    };
    let bytes = value * base.powi(power);
    Ok(if bits { bytes / 8.0 } else { bytes }.ceil() as u64)
}

/// A byte size as Meilisearch shows it in task details (`"24 MiB"`, `"1 MB"`, `"60 B"`).
fn format_bytes(n: u64) -> String {
    let units = [
        ("EiB", 1u64 << 60),
        ("EB", 1_000_000_000_000_000_000),
        ("PiB", 1 << 50),
        ("PB", 1_000_000_000_000_000),
        ("TiB", 1 << 40),
        ("TB", 1_000_000_000_000),
        ("GiB", 1 << 30),
        ("GB", 1_000_000_000),
        ("MiB", 1 << 20),
        ("MB", 1_000_000),
        ("KiB", 1 << 10),
        ("KB", 1_000),
    ];
    match units.iter().find(|(_, size)| n >= *size) {
        Some((name, size)) => format!("{} {name}", n as f64 / *size as f64),
        None => format!("{n} B"),
    }
}

/// How task details show an API key.
fn hide_secret(key: &str) -> String {
    match key.len() {
        n if n < 10 => "XXX...".to_string(),
        n if n < 20 => format!("{}XXXX...", &key[..2]),
        n if n < 30 => format!("{}XXXXX...", &key[..3]),
        _ => format!("{}XXXXXX...", &key[..5]),
    }
}

fn parse_export(req: &Message) -> Result<ExportRequest, Answer> {
    let bad = |code: &str, message: &str| error(400, code, "invalid_request", message);
    match req.header("content-type") {
        None => return Err(error(415, "missing_content_type", "invalid_request", "A Content-Type header is missing. Accepted values for the Content-Type header are: `application/json`")),
        Some(ct) if !ct.starts_with("application/json") => return Err(error(415, "invalid_content_type", "invalid_request", &format!("The Content-Type `{ct}` is invalid. Accepted values for the Content-Type header are: `application/json`"))),
        _ => {}
    }
    if req.body.is_empty() {
        return Err(bad("missing_payload", "A json payload is missing."));
    }
    let body: Value = serde_json::from_slice(&req.body).map_err(|e| {
        bad(
            "malformed_payload",
            &format!("The json payload provided is malformed. `{e}`."),
        )
    })?;
    let Value::Object(fields) = &body else {
        let message = format!(
            "Invalid value type: expected an object, but found {}",
            found(&body)
        );
        return Err(bad("bad_request", &message));
    };
    let mut request = ExportRequest {
        url: String::new(),
        api_key: None,
        payload_size: None,
        indexes: BTreeMap::from([("*".to_string(), (Value::Null, false))]),
    };
    for (name, value) in fields {
        let wrong = |code: &str, what: &str| {
            let message = format!(
                "Invalid value type at `.{name}`: expected {what}, but found {}",
                found(value)
            );
            Err(bad(code, &message))
        };
        match (name.as_str(), value) {
            ("url", Value::String(url)) => request.url = url.clone(),
            ("url", _) => return wrong("invalid_export_url", "a string"),
            ("apiKey", Value::String(key)) => request.api_key = Some(key.clone()),
            ("apiKey", Value::Null) => {}
            ("apiKey", _) => return wrong("invalid_export_api_key", "a string"),
            ("payloadSize", Value::Null) => {}
            ("payloadSize", Value::Number(n)) if n.is_u64() => request.payload_size = n.as_u64(),
            ("payloadSize", Value::String(s)) => {
                let size = parse_bytes(s).map_err(|m| {
                    bad(
                        "invalid_export_payload_size",
                        &format!("Invalid value at `.payloadSize`: {m}"),
                    )
                })?;
                request.payload_size = Some(size);
            }
            ("payloadSize", _) => {
                return wrong(
                    "invalid_export_payload_size",
                    "a positive integer or a string",
                )
            }
            ("indexes", Value::Null) => {}
            ("indexes", Value::Object(patterns)) => {
                request.indexes.clear();
                for (pattern, settings) in patterns {
                    let valid = match pattern.strip_suffix('*') {
                        Some("") => true,
                        Some(prefix) => valid_uid(prefix),
                        None => valid_uid(pattern),
                    };
                    if !valid {
                        let message = format!("Invalid value at `.indexes`: the key {} could not be deserialized into the key type `meilisearch_types::index_uid_pattern::IndexUidPattern`", Value::from(pattern.as_str()));
                        return Err(bad("bad_request", &message));
                    }
                    let Value::Object(settings) = settings else {
                        let message = format!(
                            "Invalid value type at `.indexes.{pattern}`: expected an object, but found {}",
                            found(settings)
                        );
                        return Err(bad("bad_request", &message));
                    };
                    let (mut filter, mut override_settings) = (Value::Null, false);
                    for (name, value) in settings {
                        match (name.as_str(), value) {
                            ("filter", v) => filter = v.clone(),
                            ("overrideSettings", Value::Bool(b)) => override_settings = *b,
                            ("overrideSettings", v) => {
                                let message = format!("Invalid value type at `.indexes.{pattern}.overrideSettings`: expected a boolean, but found {}", found(v));
                                return Err(bad(
                                    "invalid_export_index_override_settings",
                                    &message,
                                ));
                            }
                            (other, _) => {
                                let message = format!("Unknown field `{other}` inside `.indexes.{pattern}`: expected one of `filter`, `overrideSettings`");
                                return Err(bad("bad_request", &message));
                            }
                        }
                    }
                    request
                        .indexes
                        .insert(pattern.clone(), (filter, override_settings));
                }
            }
            ("indexes", _) => return wrong("bad_request", "an object"),
            (other, _) => {
                let message = format!("Unknown field `{other}`: expected one of `url`, `apiKey`, `payloadSize`, `indexes`");
                return Err(bad("bad_request", &message));
            }
        }
    }
    Ok(request)
}

/// An export task's details: `indexes` by pattern as asked (while enqueued or processing, or
/// when failed), or by index uid with `matched_documents` (snake case, as Meilisearch writes
/// it) once succeeded.
fn export_details(request: &ExportRequest, indexes: Value) -> Value {
    let mut d = Map::new();
    d.insert("url".into(), json!(request.url));
    if let Some(key) = &request.api_key {
        d.insert("apiKey".into(), json!(hide_secret(key)));
    }
    if let Some(size) = request.payload_size {
        d.insert("payloadSize".into(), json!(format_bytes(size)));
    }
    d.insert("indexes".into(), indexes);
    Value::Object(d)
}

fn requested_indexes(request: &ExportRequest) -> Value {
    Value::Object(
        request
            .indexes
            .iter()
            .map(|(p, (filter, o))| (p.clone(), json!({"filter": filter, "overrideSettings": o})))
            .collect(),
    )
}

/// `POST /export`: validates the body, enqueues an `export` task (answering `200`, as
/// Meilisearch does), and processes it unless another export is being processed.
pub fn export(shared: &Arc<Mutex<NodeState>>, req: &Message) -> Answer {
    let request = match parse_export(req) {
        Ok(r) => r,
        Err(answer) => return answer,
    };
    let mut state = shared.lock().unwrap();
    let uid = state.tasks.len();
    let enqueued = now();
    state.tasks.push(json!({
        "uid": uid, "batchUid": null, "indexUid": null, "status": "enqueued", "type": "export",
        "canceledBy": null, "details": export_details(&request, requested_indexes(&request)),
        "error": null, "duration": null, "enqueuedAt": enqueued, "startedAt": null,
        "finishedAt": null,
    }));
    if state.export_job.is_some() {
        state.queue.push_back(Queued::Export { uid, request });
    } else {
        start_export(shared, &mut state, uid, request);
    }
    json_answer(
        200,
        json!({"taskUid": uid, "indexUid": null, "status": "enqueued", "type": "export", "enqueuedAt": enqueued}),
    )
}

/// Processes the export again after a restart, as Meilisearch does with the task it was
/// processing when it stopped.
pub fn resume_export(shared: &Arc<Mutex<NodeState>>) {
    let mut state = shared.lock().unwrap();
    if let Some(job) = state.export_job.take() {
        start_export(shared, &mut state, job.uid, job.request);
    }
}

/// One index to export, read from one snapshot of the node.
struct ExportStep {
    uid: String,
    filter: Value,
    override_settings: bool,
    primary_key: Option<String>,
    settings: Value,
    /// The documents, or the task error their filter gives.
    documents: Result<Vec<Value>, Value>,
}

fn start_export(
    shared: &Arc<Mutex<NodeState>>,
    state: &mut NodeState,
    uid: usize,
    request: ExportRequest,
) {
    let t = &mut state.tasks[uid];
    t["status"] = json!("processing");
    t["batchUid"] = json!(uid);
    t["startedAt"] = json!(now());
    // Each index goes to the first pattern (in order) matching it; a failing filter ends the
    // export there.
    let mut steps = Vec::new();
    for (index_uid, index) in &state.indexes {
        let Some((_, (filter, override_settings))) = request
            .indexes
            .iter()
            .find(|(p, _)| pattern_matches(p, index_uid))
        else {
            continue;
        };
        let documents = match select(index, filter) {
            Ok(docs) => Ok(docs.into_iter().map(|(_, d)| d.clone()).collect()),
            Err(m) => Err(task_error(
                "invalid_document_filter",
                &format!("Index `{index_uid}`: {m}"),
            )
            .unwrap()),
        };
        let failed = documents.is_err();
        steps.push(ExportStep {
            uid: index_uid.clone(),
            filter: filter.clone(),
            override_settings: *override_settings,
            primary_key: index.primary_key.clone(),
            settings: settings_of(index),
            documents,
        });
        if failed {
            break;
        }
    }
    let target = ExportTarget {
        url: request.url.clone(),
        api_key: request.api_key.clone(),
        allowed: state.allowed_ip_networks.clone(),
        retry_for: state
            .export_retry_for
            .unwrap_or(Duration::from_secs(15 * 60)),
    };
    // Meilisearch's default: its payload limit (100 MB) less 1 MiB.
    let limit = request
        .payload_size
        .unwrap_or(100_000_000 - (1 << 20))
        .max(1) as usize;
    let shared_state = shared.clone();
    let handle = tokio::spawn(async move {
        let outcome = target.push(steps, limit).await;
        finish_export(&shared_state, uid, outcome);
    })
    .abort_handle();
    state.export_job = Some(ExportJob {
        uid,
        request,
        handle,
    });
}

fn finish_export(shared: &Arc<Mutex<NodeState>>, uid: usize, outcome: Result<Value, Value>) {
    let mut state = shared.lock().unwrap();
    if state.export_job.as_ref().is_none_or(|j| j.uid != uid) {
        return; // canceled meanwhile
    }
    state.export_job = None;
    let t = &mut state.tasks[uid];
    match outcome {
        Ok(indexes) => {
            t["status"] = json!("succeeded");
            t["details"]["indexes"] = indexes;
        }
        Err(e) => {
            t["status"] = json!("failed");
            t["error"] = e;
        }
    }
    t["duration"] = json!("PT0.001S");
    t["finishedAt"] = json!(now());
    drain(shared, &mut state);
}

/// Runs the tasks that waited behind an export, up to the next export.
fn drain(shared: &Arc<Mutex<NodeState>>, state: &mut NodeState) {
    while state.export_job.is_none() {
        match state.queue.pop_front() {
            None => return,
            Some(Queued::Task { uid, run }) => run_task(state, uid, run),
            Some(Queued::Export { uid, request }) => start_export(shared, state, uid, request),
        }
    }
}

/// `POST /tasks/cancel`: cancels the enqueued and processing tasks matching `uids`, `types`,
/// `statuses` and `indexUids` (an export being processed stops), answering `200`.
pub fn cancel(shared: &Arc<Mutex<NodeState>>, req: &Message) -> Answer {
    let list = |name: &str| -> Option<Vec<String>> {
        param(req, name).map(|v| v.split(',').map(str::to_string).collect())
    };
    let filters = [
        ("uid", list("uids")),
        ("type", list("types")),
        ("status", list("statuses")),
        ("indexUid", list("indexUids")),
    ];
    let mut state = shared.lock().unwrap();
    let cancel_uid = state.tasks.len();
    let matched: Vec<usize> = (0..state.tasks.len())
        .filter(|&i| {
            let t = &state.tasks[i];
            matches!(t["status"].as_str(), Some("enqueued" | "processing"))
                && filters.iter().all(|(field, wanted)| {
                    wanted.as_ref().is_none_or(|w| {
                        w.iter().any(|x| {
                            x == "*" || t[*field].as_str().unwrap_or(&t[*field].to_string()) == x
                        })
                    })
                })
        })
        .collect();
    let time = now();
    for &i in &matched {
        if state.export_job.as_ref().is_some_and(|j| j.uid == i) {
            state.export_job.take().unwrap().handle.abort();
        }
        state.queue.retain(|q| q.uid() != i);
        let t = &mut state.tasks[i];
        t["status"] = json!("canceled");
        t["canceledBy"] = json!(cancel_uid);
        t["batchUid"] = json!(cancel_uid);
        t["duration"] = json!("PT0.001S");
        t["startedAt"] = json!(time);
        t["finishedAt"] = json!(time);
    }
    let n = matched.len();
    state.tasks.push(json!({
        "uid": cancel_uid, "batchUid": cancel_uid, "indexUid": null, "status": "succeeded",
        "type": "taskCancelation", "canceledBy": null,
        "details": {"matchedTasks": n, "canceledTasks": n, "originalFilter": format!("?{}", req.query())},
        "error": null, "duration": "PT0.001S", "enqueuedAt": time, "startedAt": time,
        "finishedAt": time,
    }));
    drain(shared, &mut state);
    json_answer(
        200,
        json!({"taskUid": cancel_uid, "indexUid": null, "status": "enqueued", "type": "taskCancelation", "enqueuedAt": time}),
    )
}

/// Where an export goes, and how it reaches it.
struct ExportTarget {
    url: String,
    api_key: Option<String>,
    allowed: Vec<String>,
    retry_for: Duration,
}

/// Why a request of an export failed.
enum Failure {
    /// A Meilisearch error answer.
    Remote(Value),
    /// No answer: refused target, connection error, timeout, or an answer not from Meilisearch.
    Transport(String),
}

impl Failure {
    /// The export task's error.
    fn task_error(self) -> Value {
        let message = match self {
            Failure::Remote(e) => format!(
                "Failed to export documents to remote server {} ({}): {} <{}>",
                e["code"].as_str().unwrap_or_default(),
                e["type"].as_str().unwrap_or_default(),
                e["message"].as_str().unwrap_or_default(),
                e["link"].as_str().unwrap_or_default()
            ),
            Failure::Transport(m) => m,
        };
        json!({"message": message, "code": "internal", "type": "internal", "link": "https://docs.meilisearch.com/errors#internal"})
    }
}

impl ExportTarget {
    /// Exports every step in order, as Meilisearch does: `GET /indexes/{uid}`; when missing
    /// `POST /indexes` with the primary key, when present and `overrideSettings`
    /// `PATCH /indexes/{uid}` with it; then (unless present without `overrideSettings`) the
    /// settings with `PATCH`; then the documents, concatenated JSON objects of at most
    /// `limit` bytes (at least one document), as gzip `application/x-ndjson`. Returns the
    /// details' `indexes`, or the task error.
    async fn push(&self, steps: Vec<ExportStep>, limit: usize) -> Result<Value, Value> {
        let mut out = Map::new();
        for step in steps {
            let docs = step.documents?;
            let base = &self.url;
            let uid = &step.uid;
            let index_url = format!("{base}/indexes/{uid}");
            let exists = match self.call("GET", &index_url, None).await {
                Ok(m) => m.status == 200,
                Err(Failure::Remote(e)) if e["code"] == "index_not_found" => false,
                Err(f) => return Err(f.task_error()),
            };
            let pk = json!(step.primary_key);
            if !exists {
                // This one route replaces the URL's path instead of extending it.
                let origin = match base.find("://").map(|i| i + 3) {
                    Some(i) => &base[..base[i..].find('/').map_or(base.len(), |j| i + j)],
                    None => base.as_str(),
                };
                let body = json!({"uid": uid, "primaryKey": pk});
                self.call("POST", &format!("{origin}/indexes"), Some(json_body(&body)))
                    .await
                    .map_err(Failure::task_error)?;
            }
            if exists && step.override_settings {
                let body = json!({"primaryKey": pk});
                self.call("PATCH", &index_url, Some(json_body(&body)))
                    .await
                    .map_err(Failure::task_error)?;
            }
            if !exists || step.override_settings {
                let url = format!("{index_url}/settings");
                self.call("PATCH", &url, Some(json_body(&step.settings)))
                    .await
                    .map_err(Failure::task_error)?;
            }
            let url = format!("{index_url}/documents");
            let mut buffer = Vec::new();
            for doc in &docs {
                let bytes = serde_json::to_vec(doc).expect("json");
                if !buffer.is_empty() && buffer.len() + bytes.len() > limit {
                    self.send_documents(&url, &buffer).await?;
                    buffer.clear();
                }
                buffer.extend_from_slice(&bytes);
            }
            if !buffer.is_empty() {
                self.send_documents(&url, &buffer).await?;
            }
            out.insert(
                step.uid.clone(),
                json!({"filter": step.filter, "overrideSettings": step.override_settings, "matched_documents": docs.len()}),
            );
        }
        Ok(Value::Object(out))
    }

    async fn send_documents(&self, url: &str, ndjson: &[u8]) -> Result<(), Value> {
        let body = (
            "application/x-ndjson".to_string(),
            Some("gzip"),
            gzip_stored(ndjson),
        );
        self.call("POST", url, Some(body))
            .await
            .map(drop)
            .map_err(Failure::task_error)
    }

    /// One request, retried as Meilisearch retries it (exponential backoff from 500 ms, at
    /// most 60 s apart, for `retry_for`) after a transport error or a `408`, `429`, `500`,
    /// `502`, `503`, `504`; other error answers fail at once.
    async fn call(
        &self,
        method: &str,
        url: &str,
        body: Option<(String, Option<&str>, Vec<u8>)>,
    ) -> Result<Message, Failure> {
        let start = std::time::Instant::now();
        let mut delay = Duration::from_millis(500);
        loop {
            let failure = match self.send_once(method, url, &body).await {
                Ok(m) if (200..300).contains(&m.status) => return Ok(m),
                Ok(m) => {
                    let failure = match serde_json::from_slice::<Value>(&m.body) {
                        Ok(e) if ["message", "code", "type", "link"].iter().all(|k| e[k].is_string()) => {
                            Failure::Remote(e)
                        }
                        _ => Failure::Transport(format!(
                            "Failed to read the answer of `{method} {url}` ({}): not a Meilisearch error.",
                            m.status
                        )),
                    };
                    if !matches!(m.status, 408 | 429 | 500 | 502 | 503 | 504) {
                        return Err(failure);
                    }
                    failure
                }
                Err(e) => Failure::Transport(e),
            };
            if start.elapsed() + delay > self.retry_for {
                return Err(failure);
            }
            tokio::time::sleep(delay).await;
            delay = delay.mul_f64(1.5).min(Duration::from_secs(60));
        }
    }

    async fn send_once(
        &self,
        method: &str,
        url: &str,
        body: &Option<(String, Option<&str>, Vec<u8>)>,
    ) -> Result<Message, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{} `{url}`", TRANSPORT_BAD_URL))?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => (h, p.parse::<u16>().map_err(|e| e.to_string())?),
            _ => (authority, 80),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| e.to_string())?
            .collect();
        // Meilisearch checks every address a name resolves to, before connecting.
        if addrs.iter().any(|a| !ip_allowed(a.ip(), &self.allowed)) {
            return Err(TRANSPORT_REJECTED.to_string());
        }
        let addr = *addrs
            .first()
            .ok_or_else(|| format!("no address for `{host}`"))?;
        let mut client = super::http::Client::new(addr);
        client.timeout = Duration::from_secs(5);
        let auth = self.api_key.as_ref().map(|k| format!("Bearer {k}"));
        let mut headers = vec![("accept", "*/*"), ("user-agent", "ureq/3.3.0")];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        let path = if path.is_empty() { "/" } else { path };
        let bytes = match body {
            Some((content_type, encoding, bytes)) => {
                headers.push(("content-type", content_type.as_str()));
                if let Some(e) = encoding {
                    headers.push(("content-encoding", e));
                }
                &bytes[..]
            }
            None => &[][..],
        };
        client
            .send(method, path, &headers, bytes)
            .await
            .map_err(|e| e.to_string())
    }
}

fn json_body(v: &Value) -> (String, Option<&'static str>, Vec<u8>) {
    (
        "application/json; charset=utf-8".to_string(),
        None,
        serde_json::to_vec(v).expect("json"),
    )
}

/// The task error message when the target's address is refused (after the retries).
const TRANSPORT_REJECTED: &str = "bad uri: Rejected URI";
const TRANSPORT_BAD_URL: &str = "bad uri:";

/// A network of `--experimental-allowed-ip-networks`: `Some(None)` for `any`, else the
/// network address and prefix length; `None` when not one.
pub fn parse_network(s: &str) -> Option<Option<(IpAddr, u32)>> {
    if s.eq_ignore_ascii_case("any") {
        return Some(None);
    }
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => (ip.parse::<IpAddr>().ok()?, len.parse::<u32>().ok()?),
        None => {
            let ip = s.parse::<IpAddr>().ok()?;
            (ip, if ip.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some(Some((ip, len)))
}

/// Meilisearch's IP policy: public addresses always; others only inside an allowed network.
fn ip_allowed(ip: IpAddr, allowed: &[String]) -> bool {
    let networks: Vec<_> = allowed.iter().filter_map(|n| parse_network(n)).collect();
    if networks.iter().any(Option::is_none) || is_global(ip) {
        return true;
    }
    networks
        .into_iter()
        .flatten()
        .any(|(net, len)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        })
}

/// Whether an address is public, as Meilisearch decides it (std's unstable `is_global`).
fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            !(o[0] == 0
                || a.is_private()
                || (o[0] == 100 && (o[1] & 0b1100_0000) == 0b0100_0000)
                || a.is_loopback()
                || a.is_link_local()
                || (o[0] == 192 && o[1] == 0 && o[2] == 0 && o[3] != 9 && o[3] != 10)
                || a.is_documentation()
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || (o[0] & 240 == 240 && !a.is_broadcast())
                || a.is_broadcast())
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            !(a.is_unspecified()
                || a.is_loopback()
                || matches!(s, [0, 0, 0, 0, 0, 0xffff, _, _])
                || matches!(s, [0x64, 0xff9b, 1, _, _, _, _, _])
                || matches!(s, [0x100, 0, 0, 0, _, _, _, _])
                || (s[0] == 0x2001 && s[1] < 0x200)
                || s[0] == 0x2002
                || matches!(s, [0x2001, 0xdb8, ..] | [0x3fff, 0..=0x0fff, ..])
                || s[0] == 0x5f00
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// gzip of `data` in stored (uncompressed) deflate blocks: valid gzip for any reader.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    if data.is_empty() {
        out.extend([1, 0, 0, 0xff, 0xff]);
    }
    let mut chunks = data.chunks(0xffff).peekable();
    while let Some(chunk) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none()));
        let len = chunk.len() as u16;
        out.extend(len.to_le_bytes());
        out.extend((!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend(crc32(data).to_le_bytes());
    out.extend((data.len() as u32).to_le_bytes());
    out
}

/// Reads gzip made of stored blocks (what [`gzip_stored`] writes); `None` otherwise.
fn gunzip_stored(gz: &[u8]) -> Option<Vec<u8>> {
    if gz.get(..4)? != [0x1f, 0x8b, 8, 0] {
        return None;
    }
    let mut i = 10;
    let mut out = Vec::new();
    loop {
        let head = *gz.get(i)?;
        if head & 0b110 != 0 {
            return None;
        }
        let len = u16::from_le_bytes([*gz.get(i + 1)?, *gz.get(i + 2)?]) as usize;
        i += 5;
        out.extend_from_slice(gz.get(i..i + len)?);
        i += len;
        if head & 1 == 1 {
            break;
        }
    }
    let crc = u32::from_le_bytes(gz.get(i..i + 4)?.try_into().ok()?);
    (crc == crc32(&out)).then_some(out)
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}
