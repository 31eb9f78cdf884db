//! What identifies an answer: everything in the request that can change it, and the indexes
//! it reads.

use base64::Engine;
use serde::Deserialize;

/// The parts of a request that decide its answer.
pub struct RequestParts<'r> {
    pub method: &'r str,
    pub path: &'r str,
    pub query: &'r str,
    /// The key or tenant token: two keys may see different documents.
    pub authorization: Option<&'r [u8]>,
    pub body: &'r [u8],
}

impl RequestParts<'_> {
    /// The request as one byte string; two requests get the same answer when they are equal.
    pub fn material(&self) -> Vec<u8> {
        let auth = self.authorization.unwrap_or_default();
        let mut out = Vec::with_capacity(
            self.method.len()
                + self.path.len()
                + self.query.len()
                + auth.len()
                + self.body.len()
                + 16,
        );
        // Lengths first: no two different requests can concatenate to the same bytes.
        for part in [
            self.method.as_bytes(),
            self.path.as_bytes(),
            self.query.as_bytes(),
            auth,
        ] {
            out.extend_from_slice(&(part.len() as u32).to_le_bytes());
            out.extend_from_slice(part);
        }
        out.extend_from_slice(self.body);
        out
    }
}

/// The indexes a multi-search reads, or `None` when its body is not one (the search answers
/// the error itself).
pub fn multi_search_indexes(body: &[u8]) -> Option<Vec<String>> {
    #[derive(Deserialize)]
    struct Query {
        #[serde(rename = "indexUid")]
        index_uid: String,
    }
    #[derive(Deserialize)]
    struct Multi {
        queries: Vec<Query>,
    }
    let multi: Multi = serde_json::from_slice(body).ok()?;
    let mut out: Vec<String> = multi.queries.into_iter().map(|q| q.index_uid).collect();
    out.sort_unstable();
    out.dedup();
    Some(out)
}

/// When a tenant token stops being valid (its `exp`, seconds since the epoch): a node would
/// refuse it from then on, so its cached answers must go too. `None` for API keys and tokens
/// that never expire.
pub fn token_expiry(authorization: &[u8]) -> Option<u64> {
    let token = authorization.strip_prefix(b"Bearer ")?;
    let mut parts = token.split(|&b| b == b'.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    #[derive(Deserialize)]
    struct Claims {
        exp: Option<u64>,
    }
    serde_json::from_slice::<Claims>(&payload).ok()?.exp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(auth: Option<&'a [u8]>, query: &'a str, body: &'a [u8]) -> RequestParts<'a> {
        RequestParts {
            method: "POST",
            path: "/indexes/movies/search",
            query,
            authorization: auth,
            body,
        }
    }

    #[test]
    fn every_part_counts() {
        let base = parts(Some(b"Bearer a"), "", b"{}").material();
        assert_eq!(base, parts(Some(b"Bearer a"), "", b"{}").material());
        assert_ne!(base, parts(Some(b"Bearer b"), "", b"{}").material());
        assert_ne!(base, parts(None, "", b"{}").material());
        assert_ne!(base, parts(Some(b"Bearer a"), "q=x", b"{}").material());
        assert_ne!(base, parts(Some(b"Bearer a"), "", b"{ }").material());
        // A boundary moved between two parts is a different request.
        assert_ne!(
            parts(Some(b"Bearer a"), "x", b"").material(),
            parts(Some(b"Bearer ax"), "", b"").material()
        );
    }

    #[test]
    fn indexes_of_a_multi_search() {
        let body = br#"{"queries":[{"indexUid":"b","q":"x"},{"indexUid":"a"},{"indexUid":"b"}]}"#;
        assert_eq!(
            multi_search_indexes(body),
            Some(vec!["a".into(), "b".into()])
        );
        let federated = br#"{"federation":{},"queries":[{"indexUid":"a"}]}"#;
        assert_eq!(multi_search_indexes(federated), Some(vec!["a".into()]));
        assert_eq!(multi_search_indexes(br#"{"queries":[{}]}"#), None);
        assert_eq!(multi_search_indexes(b"nope"), None);
    }

    #[test]
    fn a_tenant_token_expiry_is_read() {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let claims = engine.encode(br#"{"searchRules":{"*":{}},"apiKeyUid":"u","exp":1900000000}"#);
        let token = format!("Bearer eyJhbGciOiJIUzI1NiJ9.{claims}.c2ln");
        assert_eq!(token_expiry(token.as_bytes()), Some(1_900_000_000));
        let forever = engine.encode(br#"{"searchRules":["*"],"apiKeyUid":"u"}"#);
        let token = format!("Bearer h.{forever}.s");
        assert_eq!(token_expiry(token.as_bytes()), None);
        assert_eq!(token_expiry(b"Bearer a-plain-api-key"), None);
    }
}
