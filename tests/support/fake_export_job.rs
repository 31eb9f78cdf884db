//! The test node's `/export` job: the indexes pushed to the remote node in payload-sized
//! batches, with their settings, while the tasks enqueued after it wait; a cancelation or
//! the node's stop ends it. The request is validated in `fake_export_request.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::fake_export_request::*;
use super::fake_meili::*;
use super::fake_node::{json_answer, Answer, NodeState};
use super::fake_settings::settings_of;
use super::http::Message;

/// The export being processed, stopped by a cancelation or when the node stops.
pub struct ExportJob {
    pub uid: usize,
    pub request: ExportRequest,
    pub handle: tokio::task::AbortHandle,
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
    if state.export_job.is_some() || state.queue_paused {
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

/// Runs the tasks that waited behind an export (or a paused queue), up to the next export.
pub(super) fn drain(shared: &Arc<Mutex<NodeState>>, state: &mut NodeState) {
    while state.export_job.is_none() && !state.queue_paused {
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
