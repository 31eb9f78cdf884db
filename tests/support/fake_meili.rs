//! The in-memory Meilisearch behind the test node: indexes, documents, settings and tasks,
//! processed at once (a task is `succeeded` or `failed` when first read). Shapes and errors
//! follow Meilisearch v1.50 for the calls the gateway makes; the real-Meilisearch suite runs
//! the same scenarios against real nodes.

use serde_json::{json, Map, Value};

use super::fake_node::{error, json_answer, Answer, Index, NodeState};
use super::http::Message;

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn param(req: &Message, name: &str) -> Option<String> {
    req.query().split('&').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k == name).then(|| miroir::query_string::percent_decode(v))
    })
}

/// Enqueues and at once runs a task; `run` returns the details and an error, if any.
fn task(
    state: &mut NodeState,
    index: Option<&str>,
    kind: &str,
    run: impl FnOnce(&mut NodeState) -> (Value, Option<Value>),
) -> Answer {
    let uid = state.tasks.len();
    let enqueued = now();
    let (details, err) = run(state);
    let status = if err.is_some() { "failed" } else { "succeeded" };
    let finished = now();
    state.tasks.push(json!({
        "uid": uid, "batchUid": uid, "indexUid": index, "status": status, "type": kind,
        "canceledBy": null, "details": details, "error": err, "duration": "PT0.001S",
        "enqueuedAt": enqueued, "startedAt": enqueued, "finishedAt": finished,
    }));
    json_answer(
        202,
        json!({"taskUid": uid, "indexUid": index, "status": "enqueued", "type": kind, "enqueuedAt": enqueued}),
    )
}

fn task_error(code: &str, message: &str) -> Option<Value> {
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
    let docs: Vec<Value> = if ct.starts_with("application/json") {
        match serde_json::from_slice::<Value>(&req.body) {
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
        serde_json::Deserializer::from_slice(&req.body)
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
            .from_reader(&req.body[..]);
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
    match (req.method.as_str(), segs) {
        // API keys: the key string follows from the uid (a node derives it from the uid and
        // its master key), so nodes given one uid agree on the key.
        ("POST", ["keys"]) => {
            let mut key: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let uid = key["uid"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("00000000-0000-4000-8000-{:012}", state.keys.len()));
            key["uid"] = Value::from(uid.clone());
            key["key"] = Value::from(format!("k{}", uid.replace('-', "")));
            key["name"] = key.get("name").cloned().unwrap_or(Value::Null);
            state.keys.push(key.clone());
            json_answer(201, key)
        }
        ("GET", ["keys", k]) => match state
            .keys
            .iter()
            .find(|key| key["key"] == *k || key["uid"] == *k)
        {
            Some(key) => json_answer(200, key.clone()),
            None => error(
                404,
                "api_key_not_found",
                "invalid_request",
                &format!("API key `{k}` not found."),
            ),
        },
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
            Some(i) => json_answer(
                200,
                json!({"uid": uid, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z", "primaryKey": i.primary_key}),
            ),
            None => error(
                404,
                "index_not_found",
                "invalid_request",
                &format!("Index `{uid}` not found."),
            ),
        },
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
                    let pk = match (&index.primary_key, param_pk) {
                        (Some(k), Some(p)) if *k != p => {
                            return (
                                json!({"receivedDocuments": count, "indexedDocuments": 0}),
                                task_error(
                                    "index_primary_key_already_exists",
                                    &format!("Index already has a primary key: `{k}`."),
                                ),
                            );
                        }
                        (Some(k), _) => k.clone(),
                        (None, Some(p)) => p,
                        (None, None) => {
                            return (
                                json!({"receivedDocuments": count, "indexedDocuments": 0}),
                                task_error("index_primary_key_no_candidate_found", "no candidate"),
                            )
                        }
                    };
                    let mut ids = Vec::new();
                    for d in &docs {
                        match d.get(&pk).and_then(canonical) {
                            Some(id) => ids.push(id),
                            None => {
                                return (
                                    json!({"receivedDocuments": count, "indexedDocuments": 0}),
                                    task_error("missing_document_id", "missing id"),
                                )
                            }
                        }
                    }
                    index.primary_key = Some(pk);
                    for (id, d) in ids.into_iter().zip(docs) {
                        let entry = index
                            .documents
                            .entry(id)
                            .or_insert_with(|| Value::Object(Map::new()));
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
            match state.indexes.get(*uid).and_then(|i| i.documents.get(*id)) {
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
        ("GET", ["indexes", uid, "settings", "filterable-attributes"]) => {
            match state.indexes.get(*uid) {
                Some(i) => json_answer(200, i.filterable.clone()),
                None => error(
                    404,
                    "index_not_found",
                    "invalid_request",
                    &format!("Index `{uid}` not found."),
                ),
            }
        }
        ("GET", ["indexes", uid, "settings"]) => match state.indexes.get(*uid) {
            Some(i) => json_answer(
                200,
                json!({"displayedAttributes": ["*"], "searchableAttributes": ["*"], "filterableAttributes": i.filterable, "sortableAttributes": []}),
            ),
            None => error(
                404,
                "index_not_found",
                "invalid_request",
                &format!("Index `{uid}` not found."),
            ),
        },
        ("PUT", ["indexes", uid, "settings", "filterable-attributes"]) => {
            let value: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let uid = uid.to_string();
            task(state, Some(&uid.clone()), "settingsUpdate", move |s| {
                let i = s.indexes.entry(uid).or_default();
                i.filterable = if value.is_null() {
                    json!([])
                } else {
                    value.clone()
                };
                (json!({"filterableAttributes": value}), None)
            })
        }
        ("PATCH", ["indexes", uid, "settings"]) => {
            let value: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let uid = uid.to_string();
            task(state, Some(&uid.clone()), "settingsUpdate", move |s| {
                let i = s.indexes.entry(uid).or_default();
                if let Some(f) = value.get("filterableAttributes") {
                    i.filterable = if f.is_null() { json!([]) } else { f.clone() };
                }
                (value, None)
            })
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
        ("GET", ["tasks"]) => {
            let wanted: Option<Vec<u64>> =
                param(req, "uids").map(|u| u.split(',').filter_map(|x| x.parse().ok()).collect());
            let results: Vec<Value> = state
                .tasks
                .iter()
                .rev()
                .filter(|t| {
                    wanted
                        .as_ref()
                        .is_none_or(|w| w.contains(&t["uid"].as_u64().unwrap()))
                })
                .cloned()
                .collect();
            json_answer(
                200,
                json!({"results": results, "total": results.len(), "limit": 20, "from": null, "next": null}),
            )
        }
        ("GET", ["tasks", uid]) => match uid.parse::<usize>().ok().and_then(|u| state.tasks.get(u))
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
        ("POST", ["tasks", "cancel"]) => task(state, None, "taskCancelation", |_| {
            (json!({"matchedTasks": 0, "canceledTasks": 0}), None)
        }),
        ("DELETE", ["tasks"]) => task(state, None, "taskDeletion", |_| {
            (json!({"matchedTasks": 0, "deletedTasks": 0}), None)
        }),
        _ => (404, Vec::new(), Vec::new()),
    }
}

/// The shard tag values a filter names (`_miroir_shard IN ["..", ..]`), if it names any.
fn tag_filter(filter: &Value) -> Option<Vec<String>> {
    let text = match filter {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" AND "),
        _ => return None,
    };
    let start = text.find("_miroir_shard IN [")? + "_miroir_shard IN [".len();
    // Tag values hold brackets too: the list ends at the last bracket.
    let end = text.rfind(']')?;
    // Values are quoted and may hold commas (the tag alphabet has one): read quote to quote.
    let inner = &text[start..end];
    Some(
        inner
            .split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect(),
    )
}

/// A small search: documents containing `q` (all for an empty query), the shard filter
/// honoured, ordered by id through a sort rule in the score details.
fn search(state: &mut NodeState, uid: &str, req: &Message) -> Answer {
    if state.search_overloaded {
        return error(
            503,
            "too_many_search_requests",
            "system",
            "Too many search requests running at the same time: 0. Retry after 10s.",
        );
    }
    let Some(index) = state.indexes.get(uid) else {
        return error(
            404,
            "index_not_found",
            "invalid_request",
            &format!("Index `{uid}` not found."),
        );
    };
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let q = body["q"].as_str().unwrap_or("").to_lowercase();
    let shards = tag_filter(&body["filter"]);
    let mut hits: Vec<(String, Value)> = index
        .documents
        .iter()
        .filter(|(_, d)| {
            shards.as_ref().is_none_or(|s| {
                d["_miroir_shard"]
                    .as_str()
                    .is_some_and(|t| s.iter().any(|x| x == t))
            })
        })
        .filter(|(_, d)| q.is_empty() || d.to_string().to_lowercase().contains(&q))
        .map(|(id, d)| (id.clone(), d.clone()))
        .collect();
    hits.sort_by(|a, b| a.0.cmp(&b.0));
    let total = hits.len();
    let offset = body["offset"].as_u64().unwrap_or(0) as usize;
    let limit = body["limit"].as_u64().unwrap_or(20) as usize;
    let page: Vec<Value> = hits
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|(id, mut d)| {
            if body["showRankingScore"] == true {
                d["_rankingScore"] = json!(1.0);
            }
            if body["showRankingScoreDetails"] == true {
                d["_rankingScoreDetails"] = json!({"id:asc": {"order": 0, "value": id}});
            }
            d
        })
        .collect();
    json_answer(
        200,
        json!({"hits": page, "query": q, "processingTimeMs": 0, "limit": limit, "offset": offset, "estimatedTotalHits": total, "requestUid": "01a20000-0000-7000-8000-000000000000"}),
    )
}
