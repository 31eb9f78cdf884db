//! A complete response of the gateway's own: status, headers and body; the proxy writes it
//! with a `Content-Length`, so keep-alive clients never wait for more.

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

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
}
