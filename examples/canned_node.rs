//! A stand-in Meilisearch node for load benchmarks: it answers every request at once with a
//! recorded Meilisearch answer (`benches/load/fixtures/`), so a load run measures the hop in
//! front of it (the gateway, or nginx), not the search.
//!
//! ```sh
//! cargo run --release --example canned_node -- --fixtures benches/load/fixtures \
//!     --listen 127.0.0.1:18101 --listen 127.0.0.1:18102
//! ```
//!
//! One process serves every `--listen` address. Any index uid is accepted. A request no
//! fixture answers gets an empty `404` and a line `unanswered: METHOD TARGET` on stderr, so a
//! benchmark can tell the gateway asked for something it did not expect.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use clap::Parser;
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Parser)]
#[command(about = "Answers Meilisearch requests at once with recorded answers")]
struct Args {
    /// The directory of recorded answers.
    #[arg(long)]
    fixtures: PathBuf,
    /// An address to listen on (repeat for several nodes).
    #[arg(long, required = true)]
    listen: Vec<SocketAddr>,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print every request line on stderr.
    #[arg(long)]
    log: bool,
}

/// A complete response, head and body, ready to write.
type Canned = Vec<u8>;

/// The recorded answers, as responses.
struct Answers {
    health: Canned,
    version: Canned,
    indexes: Canned,
    keys: Canned,
    index: Canned,
    settings: Canned,
    document: Canned,
    documents_fetch: Canned,
    search: Canned,
    multi_search: Canned,
    missing_payload: Canned,
    malformed_payload: Canned,
    not_found: Canned,
    /// `documents-write.json`, its `taskUid` replaced by a fresh one per write.
    write: Map<String, Value>,
    /// `task.json`: one finished task, repeated for every uid asked of `/tasks`.
    task: Map<String, Value>,
    next_task: AtomicU64,
    log: bool,
}

fn response(status: u16, body: &[u8]) -> Canned {
    let reason = match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "",
    };
    // The headers a Meilisearch node sends, but `date` (a canned answer has no clock).
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-length: {}\r\n{}vary: Origin, \
         Access-Control-Request-Method, Access-Control-Request-Headers\r\n\r\n",
        body.len(),
        if body.is_empty() {
            ""
        } else {
            "content-type: application/json\r\n"
        },
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn read_fixture(dir: &Path, name: &str) -> Result<Vec<u8>, String> {
    let path = dir.join(name);
    let mut body = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    // Fixture files end with a newline for editors; a node's body does not.
    while body.last().is_some_and(u8::is_ascii_whitespace) {
        body.pop();
    }
    Ok(body)
}

fn read_object(dir: &Path, name: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice(&read_fixture(dir, name)?) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(format!("{name}: not a JSON object")),
    }
}

impl Answers {
    fn load(dir: &Path, log: bool) -> Result<Answers, String> {
        let ok = |name: &str| read_fixture(dir, name).map(|b| response(200, &b));
        let bad = |name: &str| read_fixture(dir, name).map(|b| response(400, &b));
        let write = read_object(dir, "documents-write.json")?;
        let first = write.get("taskUid").and_then(Value::as_u64).unwrap_or(0);
        Ok(Answers {
            health: ok("health.json")?,
            version: ok("version.json")?,
            indexes: ok("indexes.json")?,
            keys: ok("keys.json")?,
            index: ok("index.json")?,
            settings: ok("settings.json")?,
            document: ok("document.json")?,
            documents_fetch: ok("documents-fetch.json")?,
            search: ok("search.json")?,
            multi_search: ok("multi-search.json")?,
            missing_payload: bad("missing-payload.json")?,
            malformed_payload: bad("malformed-payload.json")?,
            not_found: response(404, b""),
            write,
            task: read_object(dir, "task.json")?,
            next_task: AtomicU64::new(first),
            log,
        })
    }

    /// `202` for a documents write, with a task uid of its own.
    fn write(&self) -> Canned {
        let uid = self.next_task.fetch_add(1, Ordering::Relaxed);
        let mut summary = self.write.clone();
        summary.insert("taskUid".into(), uid.into());
        response(202, &serde_json::to_vec(&summary).unwrap_or_default())
    }

    /// `GET /tasks?uids=…&limit=…`: every uid asked, succeeded (newest first, as a node
    /// lists them); without `uids`, the recorded task alone.
    fn tasks(&self, query: &str) -> Canned {
        let mut uids: Vec<u64> = query
            .split('&')
            .filter_map(|p| p.strip_prefix("uids="))
            .flat_map(|v| v.split("%2C").flat_map(|v| v.split(',')))
            .filter_map(|u| u.parse().ok())
            .collect();
        if uids.is_empty() {
            uids.extend(self.task.get("uid").and_then(Value::as_u64));
        }
        uids.sort_unstable_by(|a, b| b.cmp(a));
        uids.dedup();
        let results: Vec<Value> = uids
            .iter()
            .map(|&uid| {
                let mut t = self.task.clone();
                t.insert("uid".into(), uid.into());
                t.insert("batchUid".into(), uid.into());
                Value::Object(t)
            })
            .collect();
        let total = results.len();
        let body = serde_json::json!({
            "results": results, "total": total, "limit": total.max(1), "from": uids.first(), "next": null
        });
        response(200, &serde_json::to_vec(&body).unwrap_or_default())
    }

    /// The answer to one request.
    fn answer<'a>(&'a self, method: &str, target: &str, body: &[u8]) -> Answer<'a> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        // Meilisearch checks a JSON body before anything else it reads.
        let json_body = || {
            let trimmed = body.trim_ascii();
            if trimmed.is_empty() {
                Some(&self.missing_payload)
            } else if !matches!(trimmed.last(), Some(b'}' | b']')) {
                Some(&self.malformed_payload)
            } else {
                None
            }
        };
        let canned = match (method, segments.as_slice()) {
            ("GET", ["health"]) => &self.health,
            ("GET", ["version"]) => &self.version,
            ("GET", ["indexes"]) => &self.indexes,
            // The gateway's alignment of the nodes' keys: every canned node holds these.
            ("GET", ["keys"]) => &self.keys,
            ("GET", ["indexes", _]) => &self.index,
            ("GET", ["indexes", _, "settings"]) => &self.settings,
            ("GET", ["indexes", _, "documents", _]) => &self.document,
            ("POST", ["indexes", _, "documents", "fetch"]) => &self.documents_fetch,
            ("GET", ["tasks"]) => return Answer::Built(self.tasks(query)),
            ("POST", ["indexes", _, "search"]) => json_body().unwrap_or(&self.search),
            ("POST", ["multi-search"]) => json_body().unwrap_or(&self.multi_search),
            ("POST" | "PUT", ["indexes", _, "documents"]) => match json_body() {
                Some(error) => error,
                None => return Answer::Built(self.write()),
            },
            _ => {
                eprintln!("unanswered: {method} {target}");
                &self.not_found
            }
        };
        Answer::Canned(canned)
    }
}

enum Answer<'a> {
    Canned(&'a Canned),
    Built(Canned),
}

impl Answer<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Answer::Canned(c) => c,
            Answer::Built(b) => b,
        }
    }
}

/// One request's head, as far as the node needs it.
struct Head {
    method: String,
    target: String,
    content_length: usize,
    chunked: bool,
    close: bool,
}

fn parse_head(head: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut request = lines.next()?.split(' ');
    let method = request.next()?.to_string();
    let target = request.next()?.to_string();
    let http10 = request.next()? == "HTTP/1.0";
    let mut h = Head {
        method,
        target,
        content_length: 0,
        chunked: false,
        close: http10,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            h.content_length = value.parse().ok()?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            h.chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            h.close = value.eq_ignore_ascii_case("close")
                || (http10 && !value.eq_ignore_ascii_case("keep-alive"));
        }
    }
    Some(h)
}

/// A chunked body decoded from the front of `buf`: the body and the bytes it took, or
/// `None` when incomplete.
fn dechunk(buf: &[u8]) -> Option<Result<(Vec<u8>, usize), ()>> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let line_end = at + memchr::memmem::find(&buf[at..], b"\r\n")?;
        let size_text = std::str::from_utf8(&buf[at..line_end]).ok();
        let size = size_text
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok());
        let Some(size) = size else {
            return Some(Err(()));
        };
        let data = line_end + 2;
        if size == 0 {
            // No trailers are sent to a node; the last chunk ends with an empty line.
            return (buf.len() >= data + 2).then_some(Ok((body, data + 2)));
        }
        if buf.len() < data + size + 2 {
            return None;
        }
        body.extend_from_slice(&buf[data..data + size]);
        at = data + size + 2;
    }
}

async fn serve(mut stream: TcpStream, answers: Arc<Answers>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // Every complete request in the buffer is answered in turn (pipelining).
        let Some(head_end) = memchr::memmem::find(&buf, b"\r\n\r\n") else {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
            continue;
        };
        let Some(head) = parse_head(&buf[..head_end]) else {
            stream
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await?;
            return Ok(());
        };
        let start = head_end + 4;
        let (body, used) = if head.chunked {
            match dechunk(&buf[start..]) {
                Some(Ok((body, used))) => (body, used),
                Some(Err(())) => return Ok(()),
                None => {
                    let n = stream.read(&mut chunk).await?;
                    if n == 0 {
                        return Ok(());
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    continue;
                }
            }
        } else {
            if buf.len() < start + head.content_length {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(());
                }
                buf.extend_from_slice(&chunk[..n]);
                continue;
            }
            (
                buf[start..start + head.content_length].to_vec(),
                head.content_length,
            )
        };
        if answers.log {
            eprintln!("{} {} ({} bytes)", head.method, head.target, body.len());
        }
        let answer = answers.answer(&head.method, &head.target, &body);
        stream.write_all(answer.bytes()).await?;
        buf.drain(..start + used);
        if head.close {
            return stream.shutdown().await;
        }
    }
}

async fn listen(addr: SocketAddr, answers: Arc<Answers>) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            // Out of descriptors, a reset before accept: keep serving the others.
            Err(e) => {
                eprintln!("accept on {addr}: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let answers = answers.clone();
        tokio::spawn(async move {
            let _ = serve(stream, answers).await;
        });
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let answers = match Answers::load(&args.fixtures, args.log) {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("canned_node: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("canned_node: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        let mut listeners = tokio::task::JoinSet::new();
        for addr in args.listen {
            listeners.spawn(listen(addr, answers.clone()));
        }
        // A listener ends only by failing to bind.
        match listeners.join_next().await {
            Some(Ok(Err(e))) => Err(e.to_string()),
            Some(Err(e)) => Err(e.to_string()),
            _ => Ok(()),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("canned_node: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
