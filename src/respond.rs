//! Writes a complete response of the gateway's own: status, headers, body and
//! `Content-Length`, so keep-alive clients never wait for more.

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::error::MeiliError;

/// A response the gateway writes itself.
pub struct Reply {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl Reply {
    pub fn json(status: u16, body: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            content_type: Some("application/json"),
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn error(e: &MeiliError) -> Reply {
        let mut reply = Reply::json(e.status, e.to_json());
        if e.status == 503 {
            // Meilisearch sends this on every 503.
            reply
                .headers
                .push((http::header::RETRY_AFTER, HeaderValue::from_static("10")));
        }
        reply
    }

    /// A bodiless answer, as Meilisearch's router gives for unknown routes.
    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            content_type: None,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Reply {
        self.headers.push((name, value));
        self
    }

    /// Writes the reply, adding `extra` headers (e.g. from plugins).
    pub async fn send(
        self,
        session: &mut Session,
        extra: &[(HeaderName, HeaderValue)],
    ) -> pingora::Result<()> {
        let mut header =
            ResponseHeader::build(self.status, Some(4 + self.headers.len() + extra.len()))?;
        if let Some(ct) = self.content_type {
            header.insert_header(http::header::CONTENT_TYPE, ct)?;
        }
        header.insert_header(http::header::CONTENT_LENGTH, self.body.len())?;
        for (name, value) in self.headers.into_iter().chain(extra.iter().cloned()) {
            header.insert_header(name, value)?;
        }
        let end = self.body.is_empty();
        session.write_response_header(Box::new(header), end).await?;
        if !end {
            session.write_response_body(Some(self.body), true).await?;
        }
        Ok(())
    }
}
