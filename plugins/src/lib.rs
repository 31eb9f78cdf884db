//! Optional filter stages that the gateway runs, in configured order, on every request.
//!
//! A stage sees the client's request line and headers, may add headers to the upstream
//! request and to the response, may add fields to the access log, and may answer the
//! request itself ([`Outcome::Respond`]), which ends the chain. Stages know nothing of
//! Pingora, so they are plain to test.

mod request_id;

pub use request_id::{RequestId, RequestIdConfig};

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::Deserialize;

/// What a stage sees of the client's request.
pub struct RequestView<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub headers: &'a HeaderMap,
}

/// Per-request effects the stages accumulate; the gateway applies them.
#[derive(Debug, Default)]
pub struct Exchange {
    /// Headers to set on every request sent to a node for this client request.
    pub upstream_headers: Vec<(HeaderName, HeaderValue)>,
    /// Headers to set on the response to the client.
    pub response_headers: Vec<(HeaderName, HeaderValue)>,
    /// The request id, once a stage has settled it; written in the access log.
    pub request_id: Option<String>,
}

/// A response a stage writes instead of letting the request go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// A JSON body (the gateway adds `Content-Type` and `Content-Length`).
    pub body: Vec<u8>,
}

/// What a stage decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Go on with the next stage, then the gateway.
    Continue,
    /// Answer the client with this response; later stages do not run.
    Respond(Reply),
}

/// One filter stage.
pub trait Plugin: Send + Sync {
    /// The stage's name, as written in the configuration.
    fn name(&self) -> &'static str;
    /// Runs before the gateway routes the request.
    fn on_request(&self, req: &RequestView<'_>, exchange: &mut Exchange) -> Outcome;
}

/// One `[[plugins]]` entry of the configuration; `kind` selects the stage.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum PluginConfig {
    RequestId(RequestIdConfig),
}

impl PluginConfig {
    /// The stage list used when the configuration names none.
    pub fn defaults() -> Vec<PluginConfig> {
        vec![PluginConfig::RequestId(RequestIdConfig::default())]
    }

    /// Checks the entry and builds its stage.
    pub fn build(&self) -> Result<Box<dyn Plugin>, String> {
        match self {
            PluginConfig::RequestId(c) => Ok(Box::new(RequestId::new(c)?)),
        }
    }
}

/// Runs `plugins` in order until one answers.
pub fn run_chain(
    plugins: &[Box<dyn Plugin>],
    req: &RequestView<'_>,
    exchange: &mut Exchange,
) -> Outcome {
    for plugin in plugins {
        if let Outcome::Respond(reply) = plugin.on_request(req, exchange) {
            return Outcome::Respond(reply);
        }
    }
    Outcome::Continue
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Deny;
    impl Plugin for Deny {
        fn name(&self) -> &'static str {
            "deny"
        }
        fn on_request(&self, _: &RequestView<'_>, _: &mut Exchange) -> Outcome {
            Outcome::Respond(Reply {
                status: 403,
                body: b"{}".to_vec(),
            })
        }
    }

    #[test]
    fn a_stage_that_answers_stops_the_chain() {
        let id = PluginConfig::defaults()[0].build().unwrap();
        let chain: Vec<Box<dyn Plugin>> = vec![Box::new(Deny), id];
        let headers = HeaderMap::new();
        let req = RequestView {
            method: &Method::GET,
            path: "/",
            headers: &headers,
        };
        let mut ex = Exchange::default();
        let out = run_chain(&chain, &req, &mut ex);
        assert_eq!(
            out,
            Outcome::Respond(Reply {
                status: 403,
                body: b"{}".to_vec()
            })
        );
        // The request-id stage after it never ran.
        assert!(ex.request_id.is_none());
    }

    #[test]
    fn config_entries_parse_by_kind_and_reject_unknown_keys() {
        #[derive(Deserialize)]
        struct Doc {
            plugins: Vec<PluginConfig>,
        }
        let doc: Doc =
            toml::from_str("[[plugins]]\nkind = \"request-id\"\nheader = \"x-trace-id\"\n")
                .unwrap();
        assert_eq!(
            doc.plugins,
            vec![PluginConfig::RequestId(RequestIdConfig {
                header: "x-trace-id".into()
            })]
        );
        let err = toml::from_str::<Doc>("[[plugins]]\nkind = \"request-id\"\nheadr = \"x\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("headr"), "{err}");
        let err = toml::from_str::<Doc>("[[plugins]]\nkind = \"rate-limit\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("rate-limit"), "{err}");
    }
}
