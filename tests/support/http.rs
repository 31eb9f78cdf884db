//! A minimal HTTP/1.1 client and server codec for tests: enough to speak to the gateway and
//! to play a Meilisearch node, with keep-alive, `Content-Length` and chunked bodies.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A parsed request or response head plus body.
#[derive(Debug, Clone, Default)]
pub struct Message {
    /// `GET /path?query` for a request, the status code for a response.
    pub method: String,
    pub target: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Message {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one message head and body. `Ok(None)` at a clean end of stream.
pub async fn read_message<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    is_response: bool,
    head_request: bool,
) -> std::io::Result<Option<Message>> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let mut msg = Message::default();
    let first = line.trim_end().to_string();
    let mut parts = first.splitn(3, ' ');
    if is_response {
        parts.next();
        msg.status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    } else {
        msg.method = parts.next().unwrap_or("").to_string();
        msg.target = parts.next().unwrap_or("").to_string();
    }
    loop {
        line.clear();
        reader.read_line(&mut line).await?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((n, v)) = l.split_once(':') {
            msg.headers
                .push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    let no_body = head_request
        || (is_response && (msg.status == 204 || msg.status == 304 || msg.status < 200));
    if no_body {
        return Ok(Some(msg));
    }
    if msg
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            line.clear();
            reader.read_line(&mut line).await?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            if size == 0 {
                line.clear();
                reader.read_line(&mut line).await?;
                break;
            }
            let mut chunk = vec![0; size];
            reader.read_exact(&mut chunk).await?;
            msg.body.extend_from_slice(&chunk);
            line.clear();
            reader.read_line(&mut line).await?;
        }
    } else if let Some(len) = msg
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        msg.body = vec![0; len];
        reader.read_exact(&mut msg.body).await?;
    } else if is_response {
        // No length: the body runs to the end of the connection.
        reader.read_to_end(&mut msg.body).await?;
    }
    Ok(Some(msg))
}

/// Serializes a response with `Content-Length`.
pub fn response_bytes(status: u16, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes();
    for (n, v) in headers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// A keep-alive client to one address. Every read has a timeout, so a response without
/// `Content-Length` on a kept-alive connection fails the test instead of hanging it.
pub struct Client {
    addr: std::net::SocketAddr,
    conn: Option<BufReader<TcpStream>>,
    pub timeout: Duration,
}

impl Client {
    pub fn new(addr: std::net::SocketAddr) -> Self {
        Client {
            addr,
            conn: None,
            timeout: Duration::from_secs(10),
        }
    }

    pub async fn get(&mut self, path: &str) -> std::io::Result<Message> {
        self.send("GET", path, &[], b"").await
    }

    /// Sends one request on the kept-alive connection (opening it if needed).
    pub async fn send(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Message> {
        let mut req = format!("{method} {target} HTTP/1.1\r\nhost: {}\r\n", self.addr);
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" || method == "PUT" || method == "PATCH" {
            req.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        // A kept-alive connection the server has closed meanwhile (its idle timeout) is
        // replaced before use, as HTTP clients' pools do: a request written into it would get
        // no answer.
        if let Some(conn) = &self.conn {
            let open = conn.buffer().is_empty()
                && matches!(
                    conn.get_ref().try_read(&mut [0u8; 1]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
                );
            if !open {
                self.conn = None;
            }
        }
        let reused = self.conn.is_some();
        let fut = async {
            if self.conn.is_none() {
                self.conn = Some(BufReader::new(TcpStream::connect(self.addr).await?));
            }
            let conn = self.conn.as_mut().expect("just set");
            conn.get_mut().write_all(&bytes).await?;
            read_message(conn, true, method == "HEAD")
                .await?
                .ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed")
                })
        };
        let result = tokio::time::timeout(self.timeout, fut)
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "response timed out",
                ))
            });
        // Like HTTP clients do, a GET on a kept-alive connection the server had closed is sent
        // again on a new connection.
        let stale = matches!(&result, Err(e) if e.kind() != std::io::ErrorKind::TimedOut);
        if reused && stale && (method == "GET" || method == "HEAD") {
            self.conn = None;
            return Box::pin(self.send(method, target, headers, body)).await;
        }
        match &result {
            Ok(msg)
                if !msg
                    .header("connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close")) => {}
            _ => self.conn = None,
        }
        result
    }
}

/// One request on a fresh connection.
pub async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Message> {
    Client::new(addr).send(method, target, headers, body).await
}
