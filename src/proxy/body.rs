//! Reading a request body the gateway answers itself, within the size limit.

use bytes::Bytes;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use pingora::ErrorType;

use super::Gateway;
use crate::error::MeiliError;
use crate::respond::Reply;

impl Gateway {
    /// Reads the whole request body, within the size limit, answering `100 Continue` first
    /// when the client waits for it.
    pub(super) async fn read_body(
        &self,
        session: &mut Session,
    ) -> std::result::Result<Bytes, Reply> {
        let expects_continue = session
            .req_header()
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if expects_continue {
            if let Err(e) = session.as_downstream_mut().write_continue_response().await {
                return Err(Reply::error(&MeiliError::internal(format!(
                    "cannot answer 100-continue: {e}"
                ))));
            }
        }
        let mut body = bytes::BytesMut::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > self.max_body_bytes {
                        return Err(Reply::error(&MeiliError::payload_too_large(
                            self.max_body_bytes,
                        )));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body.freeze()),
                // A slow body gets what a slow head gets; details stay in the log.
                Err(e) if matches!(e.etype(), ErrorType::ReadTimedout) => {
                    log::debug!("request body too slow: {e}");
                    return Err(Reply::empty(408));
                }
                Err(e) => {
                    log::debug!("request body unreadable: {e}");
                    return Err(Reply::error(&MeiliError::new(
                        400,
                        "bad_request",
                        crate::error::ErrorType::InvalidRequest,
                        "The provided payload is incomplete and cannot be parsed",
                    )));
                }
            }
        }
    }
}

/// The request's `Content-Length`, when it declares one.
pub(super) fn declared_length(req: &RequestHeader) -> Option<usize> {
    req.headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}
