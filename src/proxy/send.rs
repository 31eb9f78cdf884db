//! Writing a gateway answer to the client, and the status label it is counted under.

use http::{HeaderName, HeaderValue};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

use crate::respond::Reply;

/// Writes `reply` with a `Content-Length`, adding `extra` headers (e.g. from plugins).
pub(super) async fn send(
    session: &mut Session,
    reply: Reply,
    extra: &[(HeaderName, HeaderValue)],
) -> Result<()> {
    let mut header =
        ResponseHeader::build(reply.status, Some(4 + reply.headers.len() + extra.len()))?;
    if let Some(ct) = reply.content_type {
        header.insert_header(http::header::CONTENT_TYPE, ct)?;
    }
    header.insert_header(http::header::CONTENT_LENGTH, reply.body.len())?;
    for (name, value) in reply.headers.into_iter().chain(extra.iter().cloned()) {
        header.insert_header(name, value)?;
    }
    let end = reply.body.is_empty();
    session.write_response_header(Box::new(header), end).await?;
    if !end {
        session.write_response_body(Some(reply.body), true).await?;
    }
    Ok(())
}

/// A static label per status, so metrics never allocate per request.
pub(super) fn status_label(status: u16) -> &'static str {
    match status {
        0 => "0",
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        408 => "408",
        413 => "413",
        415 => "415",
        500 => "500",
        501 => "501",
        502 => "502",
        503 => "503",
        504 => "504",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}
