//! The client connections, before Pingora's HTTP handling: a cap on connections open at once
//! (with a few kept for `GET /health`), a deadline for a connection's first request head
//! (`408`, as a node answers a slow client), a bound on header count (`431`), and timeouts for
//! bodies and idle keep-alive connections. Everything else goes to the proxy
//! ([`crate::proxy::Gateway`]) unchanged.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::ClientLimits;
use crate::metrics::Metrics;

/// How long a connection beyond the cap has to send its (health check) request head.
const RESERVED_HEAD_DEADLINE: Duration = Duration::from_millis(250);

/// The first read of a kept-alive connection's next request (most heads fit).
const NEXT_READ_BYTES: usize = 4096;

/// Bytes a request head may take (a node answers `431` beyond 128 KiB).
const MAX_HEAD_BYTES: usize = 128 * 1024;

/// The proxy behind its connection guard.
pub struct Edge<A> {
    proxy: Arc<A>,
    limits: ClientLimits,
    metrics: Arc<Metrics>,
    open: Arc<AtomicUsize>,
    /// When the "limit reached" line was last logged (seconds since start).
    warned_at: AtomicU64,
    started: std::time::Instant,
}

impl<A> Edge<A> {
    /// Logs that the cap is reached, at most every ten seconds.
    fn warn_full(&self) {
        let now = self.started.elapsed().as_secs() + 10;
        let last = self.warned_at.load(Ordering::Relaxed);
        if now >= last + 10
            && self
                .warned_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            log::warn!(
                "client connection limit reached ({} open, {} more kept for health checks): new connections are refused",
                self.limits.max_connections,
                self.limits.reserved_connections
            );
        }
    }

    pub fn new(proxy: A, limits: ClientLimits, metrics: Arc<Metrics>) -> Self {
        Edge {
            proxy: Arc::new(proxy),
            limits,
            metrics,
            open: Arc::default(),
            warned_at: AtomicU64::new(0),
            started: std::time::Instant::now(),
        }
    }
}

/// One open connection, counted until dropped.
struct Open {
    count: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
        self.metrics.client_connections.dec();
    }
}

/// How reading a connection's first request head ended.
#[derive(Debug, PartialEq)]
pub enum Head {
    /// The head, whole (and any bytes after it).
    Complete(BytesMut),
    /// The client closed the connection first.
    Closed,
    /// More headers (or bytes) than allowed.
    TooLarge,
}

/// Where a request head ends in `buf` (after its blank line), if it does.
fn head_end(buf: &[u8]) -> Option<usize> {
    memchr::memmem::find(buf, b"\r\n\r\n").map(|i| i + 4)
}

/// Header lines in a complete head (lines after the request line).
pub fn header_count(head: &[u8]) -> usize {
    let end = head_end(head).unwrap_or(head.len());
    memchr::memmem::find_iter(&head[..end], b"\r\n")
        .count()
        .saturating_sub(2)
}

/// Reads until the end of a request head.
async fn read_head(stream: &mut Stream, max_headers: usize) -> std::io::Result<Head> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if let Some(end) = head_end(&buf) {
            if header_count(&buf[..end]) > max_headers {
                return Ok(Head::TooLarge);
            }
            return Ok(Head::Complete(buf));
        }
        if buf.len() >= MAX_HEAD_BYTES {
            return Ok(Head::TooLarge);
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(Head::Closed);
        }
    }
}

/// Whether a head asks for `GET /health` (what a reserved connection may serve).
fn is_health_check(head: &[u8]) -> bool {
    let line_end = memchr::memmem::find(head, b"\r\n").unwrap_or(head.len());
    let mut parts = head[..line_end].split(|&b| b == b' ');
    let (method, target) = (parts.next(), parts.next());
    method == Some(b"GET")
        && target.is_some_and(|t| {
            let path = t.split(|&b| b == b'?').next().unwrap_or_default();
            path == b"/health" || path == b"/health/"
        })
}

/// Writes a bodiless answer and closes.
async fn refuse(mut stream: Stream, status: &str) {
    let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.flush().await;
    let _ = stream.shutdown().await;
}

/// Whether the previous request left the start of the next one buffered (pipelining).
/// Pingora keeps it private to the settings; their `Debug` text shows it. The text is read
/// as it is written, and the writing stopped at that field: nothing is allocated.
fn has_pipelined_request(settings: &HttpPersistentSettings) -> bool {
    match seek_pipelined_prefix(settings) {
        Some(found) => found,
        // Written in pieces other than the derived `Debug`'s: the whole text.
        None => !format!("{settings:?}").contains("pipelined_prefix: None"),
    }
}

fn seek_pipelined_prefix(settings: &HttpPersistentSettings) -> Option<bool> {
    let mut seek = PrefixSeek::default();
    let _ = std::fmt::write(&mut seek, format_args!("{settings:?}"));
    seek.found
}

/// Reads a derived `Debug` text for whether `pipelined_prefix` is `Some` (it writes a
/// field's name, then `: `, then its value).
#[derive(Default)]
struct PrefixSeek {
    named: bool,
    found: Option<bool>,
}

impl std::fmt::Write for PrefixSeek {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.named {
            if s == ": " {
                return Ok(());
            }
            self.found = Some(s.starts_with("Some"));
            return Err(std::fmt::Error);
        }
        self.named = s == "pipelined_prefix";
        Ok(())
    }
}

fn seconds(d: Duration) -> u64 {
    d.as_secs().max(1)
}

#[async_trait]
impl<A> ServerApp for Edge<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let mut stream = crate::rehome::rehome(stream);
        let limits = &self.limits;
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.metrics.client_connections.inc();
        let _open = Open {
            count: self.open.clone(),
            metrics: self.metrics.clone(),
        };
        if open > limits.max_connections + limits.reserved_connections {
            self.metrics.client_connections_refused.inc();
            self.warn_full();
            return None;
        }
        // Beyond the cap, only health checks, one request each, whose head comes at once: a
        // slow client cannot sit on the reserve.
        let reserved = open > limits.max_connections;
        let deadline = if reserved {
            limits.header_timeout.min(RESERVED_HEAD_DEADLINE)
        } else {
            limits.header_timeout
        };
        let head = match tokio::time::timeout(deadline, read_head(&mut stream, limits.max_headers))
            .await
        {
            Err(_) => {
                self.metrics.client_timeouts.inc();
                refuse(stream, "408 Request Timeout").await;
                return None;
            }
            Ok(Err(_) | Ok(Head::Closed)) => return None,
            Ok(Ok(Head::TooLarge)) => {
                refuse(stream, "431 Request Header Fields Too Large").await;
                return None;
            }
            Ok(Ok(Head::Complete(head))) => head,
        };
        if reserved && !is_health_check(&head) {
            self.metrics.client_connections_refused.inc();
            self.warn_full();
            refuse(stream, "503 Service Unavailable").await;
            return None;
        }
        let mut session = ServerSession::new_http1(stream);
        session.set_pipelined_prefix(head);
        let keepalive = (!reserved && !*shutdown.borrow()).then(|| seconds(limits.idle_timeout));
        session.set_keepalive(keepalive);
        session.set_keepalive_reuses_remaining(
            self.proxy
                .server_options()
                .and_then(|o| o.keepalive_request_limit),
        );
        session.set_read_timeout(Some(limits.body_timeout));
        let mut result = self.proxy.process_new_http(session, shutdown).await;
        while let Some((mut stream, settings)) = result.map(|r| r.consume()) {
            // An idle connection waits here, holding its socket and little else, until its
            // next request starts (unless one is already buffered), at most the idle timeout.
            let buffered = settings.as_ref().is_some_and(has_pipelined_request);
            let mut first = None;
            if !buffered {
                // What has come of the next request, in one read (the connection has no
                // read buffer of its own once moved to this thread).
                let mut next = BytesMut::with_capacity(NEXT_READ_BYTES);
                match tokio::time::timeout(limits.idle_timeout, stream.read_buf(&mut next)).await {
                    Ok(Ok(n)) if n > 0 => first = Some(next),
                    _ => return None,
                }
            }
            let mut session = ServerSession::new_http1(stream);
            if let Some(settings) = settings {
                settings.apply_to_session(&mut session);
            }
            if let Some(first) = first {
                session.set_pipelined_prefix(first);
            }
            if !*shutdown.borrow() {
                session.set_keepalive(Some(seconds(limits.idle_timeout)));
            }
            session.set_read_timeout(Some(limits.body_timeout));
            result = self.proxy.process_new_http(session, shutdown).await;
        }
        None
    }

    async fn cleanup(&self) {
        self.proxy.http_cleanup().await;
    }
}

/// Hands memory freed by closed connections back to the system. glibc keeps a peak of idle
/// connections' buffers in its arenas for good otherwise (measured: 10 000 idle
/// connections left 100 MB behind after closing). Run every few seconds; trims only after
/// many connections have gone.
pub struct MemoryTrim {
    metrics: Arc<Metrics>,
    peak: AtomicUsize,
}

impl MemoryTrim {
    /// Connections that must have closed since the last peak for a trim to be worth it.
    const AFTER_CLOSED: usize = 256;

    pub fn new(metrics: Arc<Metrics>) -> Self {
        MemoryTrim {
            metrics,
            peak: AtomicUsize::new(0),
        }
    }

    /// One look at the connection count; trims when it fell well below its peak.
    pub fn tick(&self) {
        let open = self.metrics.client_connections.get().max(0) as usize;
        let peak = self.peak.fetch_max(open, Ordering::Relaxed).max(open);
        if peak >= open + Self::AFTER_CLOSED {
            self.peak.store(open, Ordering::Relaxed);
            trim();
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: both only return free memory to the system: mimalloc's (the gateway's
    // allocator: freed pages of threads now idle are otherwise kept) and glibc's arenas.
    unsafe {
        libmimalloc_sys::mi_collect(true);
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_buffered_next_request_is_seen_in_the_settings() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let stream: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(client));
        let session = ServerSession::new_http1(stream);
        let mut settings = HttpPersistentSettings::for_session(&session);
        assert_eq!(seek_pipelined_prefix(&settings), Some(false));
        assert!(!has_pipelined_request(&settings));
        settings.set_pipelined_prefix(BytesMut::from(&b"GET /"[..]));
        assert_eq!(seek_pipelined_prefix(&settings), Some(true));
        assert!(has_pipelined_request(&settings));
    }

    #[test]
    fn heads_are_measured_and_health_checks_recognized() {
        let head = b"GET /health HTTP/1.1\r\nHost: x\r\nA: 1\r\n\r\nrest";
        assert_eq!(head_end(head), Some(head.len() - 4));
        assert_eq!(header_count(head), 2);
        assert_eq!(header_count(b"GET / HTTP/1.1\r\n\r\n"), 0);
        assert!(is_health_check(head));
        assert!(is_health_check(b"GET /health?x=1 HTTP/1.1\r\n\r\n"));
        assert!(!is_health_check(b"GET /healthz HTTP/1.1\r\n\r\n"));
        assert!(!is_health_check(b"POST /health HTTP/1.1\r\n\r\n"));
        assert!(!is_health_check(b"GET /indexes HTTP/1.1\r\n\r\n"));
    }
}
