//! The test node's `/export`: the request validated as Meilisearch v1.50 does (deserr's
//! messages, index patterns, payload sizes, allowed networks), then the indexes pushed to
//! the remote node in payload-sized batches, with their settings, while the tasks enqueued
//! after it wait; a cancelation or the node's stop ends it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::fake_meili::*;
use super::fake_node::{error, json_answer, Answer, NodeState};
use super::fake_settings::settings_of;
use super::http::Message;

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
pub(super) fn found(v: &Value) -> String {
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

pub(super) fn valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 400
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(super) fn pattern_matches(pattern: &str, uid: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => uid.starts_with(prefix),
        None => pattern == uid,
    }
}

/// A byte size as Meilisearch reads `payloadSize` (`"24MiB"`, `"10 MB"`, `"512kb"`: a
/// lowercase `b` counts bits).
pub(super) fn parse_bytes(s: &str) -> Result<u64, String> {
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
pub(super) fn format_bytes(n: u64) -> String {
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
pub(super) fn hide_secret(key: &str) -> String {
    match key.len() {
        n if n < 10 => "XXX...".to_string(),
        n if n < 20 => format!("{}XXXX...", &key[..2]),
        n if n < 30 => format!("{}XXXXX...", &key[..3]),
        _ => format!("{}XXXXXX...", &key[..5]),
    }
}

pub(super) fn parse_export(req: &Message) -> Result<ExportRequest, Answer> {
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
pub(super) fn export_details(request: &ExportRequest, indexes: Value) -> Value {
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

pub(super) fn requested_indexes(request: &ExportRequest) -> Value {
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

pub(super) fn start_export(
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

pub(super) fn finish_export(
    shared: &Arc<Mutex<NodeState>>,
    uid: usize,
    outcome: Result<Value, Value>,
) {
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
pub(super) fn drain(shared: &Arc<Mutex<NodeState>>, state: &mut NodeState) {
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

pub(super) fn json_body(v: &Value) -> (String, Option<&'static str>, Vec<u8>) {
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
pub(super) fn ip_allowed(ip: IpAddr, allowed: &[String]) -> bool {
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
pub(super) fn is_global(ip: IpAddr) -> bool {
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
pub(super) fn gzip_stored(data: &[u8]) -> Vec<u8> {
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
pub(super) fn gunzip_stored(gz: &[u8]) -> Option<Vec<u8>> {
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

pub(super) fn crc32(data: &[u8]) -> u32 {
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
