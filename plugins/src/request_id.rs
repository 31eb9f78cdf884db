//! The request-id stage: keeps a sane incoming id, otherwise makes one, and echoes it.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderName, HeaderValue};
use serde::Deserialize;

use crate::{Exchange, Outcome, Plugin, RequestView};

/// Configuration of the request-id stage.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestIdConfig {
    /// The header that carries the id, in and out.
    #[serde(default = "default_header")]
    pub header: String,
}

fn default_header() -> String {
    "x-request-id".to_string()
}

impl Default for RequestIdConfig {
    fn default() -> Self {
        RequestIdConfig {
            header: default_header(),
        }
    }
}

/// Longest incoming id kept; longer ones are replaced, so logs stay readable.
const MAX_INCOMING_LEN: usize = 128;

/// Keeps the client's request id or generates one; forwards it to nodes and echoes it back.
pub struct RequestId {
    header: HeaderName,
    /// Random per process, so ids from two gateway processes do not collide.
    seed: u64,
    counter: AtomicU64,
}

impl RequestId {
    pub fn new(config: &RequestIdConfig) -> Result<Self, String> {
        let header = HeaderName::from_bytes(config.header.as_bytes())
            .map_err(|_| format!("`{}` is not a valid header name", config.header))?;
        // `RandomState` is keyed from the OS's randomness once per process.
        let seed = RandomState::new().hash_one(std::process::id());
        Ok(RequestId {
            header,
            seed,
            counter: AtomicU64::new(0),
        })
    }

    /// A fresh id shaped like a UUID (version 4 bits set), unique within this process.
    fn generate(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let hi = xxhash_rust::xxh3::xxh3_64_with_seed(&n.to_le_bytes(), self.seed);
        let lo = self.seed.rotate_left(17) ^ n;
        let hi = (hi & !0xf000) | 0x4000; // version 4
        let lo = (lo & !(0xc << 60)) | (0x8 << 60); // RFC 4122 variant
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0xffff,
            lo >> 48,
            lo & 0xffff_ffff_ffff
        )
    }
}

fn acceptable(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_INCOMING_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

impl Plugin for RequestId {
    fn name(&self) -> &'static str {
        "request-id"
    }

    fn on_request(&self, req: &RequestView<'_>, exchange: &mut Exchange) -> Outcome {
        let incoming = req
            .headers
            .get(&self.header)
            .and_then(|v| v.to_str().ok())
            .filter(|v| acceptable(v));
        let id = match incoming {
            Some(id) => id.to_string(),
            None => self.generate(),
        };
        // Both forms come from visible ASCII, so they are valid header values.
        if let Ok(value) = HeaderValue::from_str(&id) {
            exchange
                .upstream_headers
                .push((self.header.clone(), value.clone()));
            exchange.response_headers.push((self.header.clone(), value));
        }
        exchange.request_id = Some(id);
        Outcome::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, Method};

    fn run(stage: &RequestId, headers: &HeaderMap) -> Exchange {
        let mut ex = Exchange::default();
        let req = RequestView {
            method: &Method::GET,
            path: "/version",
            headers,
        };
        assert_eq!(stage.on_request(&req, &mut ex), Outcome::Continue);
        ex
    }

    #[test]
    fn keeps_an_incoming_id_and_echoes_it() {
        let stage = RequestId::new(&RequestIdConfig::default()).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", HeaderValue::from_static("abc-123"));
        let ex = run(&stage, &headers);
        assert_eq!(ex.request_id.as_deref(), Some("abc-123"));
        assert_eq!(ex.response_headers[0].1, "abc-123");
        assert_eq!(ex.upstream_headers[0].1, "abc-123");
    }

    #[test]
    fn generates_distinct_uuid_shaped_ids() {
        let stage = RequestId::new(&RequestIdConfig::default()).unwrap();
        let headers = HeaderMap::new();
        let a = run(&stage, &headers).request_id.unwrap();
        let b = run(&stage, &headers).request_id.unwrap();
        assert_ne!(a, b);
        for id in [&a, &b] {
            assert_eq!(id.len(), 36, "{id}");
            assert_eq!(id.as_bytes()[14], b'4', "{id}");
            assert!(
                matches!(id.as_bytes()[19], b'8' | b'9' | b'a' | b'b'),
                "{id}"
            );
        }
    }

    #[test]
    fn replaces_an_unusable_incoming_id() {
        let stage = RequestId::new(&RequestIdConfig::default()).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-request-id",
            HeaderValue::from_str(&"a".repeat(500)).unwrap(),
        );
        let ex = run(&stage, &headers);
        assert_eq!(ex.request_id.unwrap().len(), 36);
    }

    #[test]
    fn honours_a_configured_header_name() {
        let stage = RequestId::new(&RequestIdConfig {
            header: "x-trace".into(),
        })
        .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-trace", HeaderValue::from_static("t1"));
        assert_eq!(run(&stage, &headers).request_id.as_deref(), Some("t1"));
        assert!(RequestId::new(&RequestIdConfig {
            header: "bad header".into()
        })
        .is_err());
    }
}
