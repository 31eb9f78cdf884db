//! Webhooks as Meilisearch defines them: a URL and headers, at most 20 of them with at most
//! 200 headers each, shown with their `Authorization` header redacted. Plain data and rules,
//! no I/O (see [`super::Webhooks`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::{ErrorType, MeiliError};

pub const MAX_WEBHOOKS: usize = 20;
pub const MAX_HEADERS: usize = 200;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// Why a webhook write is refused, with Meilisearch's messages.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookError {
    MissingUrl(Uuid),
    TooMany,
    TooManyHeaders(Uuid),
    Immutable(Uuid),
    NotFound(Uuid),
    InvalidHeaderName(String, String),
    InvalidHeaderValue(String, String),
    InvalidUrl(String, String),
    InvalidUuid(String),
}

impl WebhookError {
    pub fn to_meili(&self) -> MeiliError {
        use WebhookError::*;
        let (status, code, message) = match self {
            MissingUrl(u) => (400, "invalid_webhook_url", format!("The URL for the webhook `{u}` is missing.")),
            TooMany => (400, "invalid_webhooks", "Defining too many webhooks would crush the server. Please limit the number of webhooks to 20. You may use a third-party proxy server to dispatch events to more than 20 endpoints.".to_string()),
            TooManyHeaders(u) => (400, "invalid_webhook_headers", format!("Too many headers for the webhook `{u}`. Please limit the number of headers to 200. Hint: To remove an already defined header set its value to `null`")),
            Immutable(u) => (400, "immutable_webhook", format!("Webhook `{u}` is immutable. The webhook defined from the command line cannot be modified using the API.")),
            NotFound(u) => (404, "webhook_not_found", format!("Webhook `{u}` not found.")),
            InvalidHeaderName(h, e) => (400, "invalid_webhook_headers", format!("Invalid header name `{h}`: {e}")),
            InvalidHeaderValue(h, e) => (400, "invalid_webhook_headers", format!("Invalid header value `{h}`: {e}")),
            InvalidUrl(u, e) => (400, "invalid_webhook_url", format!("Invalid URL `{u}`: {e}")),
            InvalidUuid(e) => (400, "invalid_webhook_uuid", format!("Invalid UUID: {e}")),
        };
        MeiliError::new(status, code, ErrorType::InvalidRequest, message)
    }
}

/// A path's webhook uuid, as a node parses it.
pub fn parse_uuid(raw: &str) -> Result<Uuid, WebhookError> {
    raw.parse::<Uuid>()
        .map_err(|e| WebhookError::InvalidUuid(e.to_string()))
}

/// `uuid` if the API may change it (not the command line's webhook, the nil uuid).
pub fn editable(uuid: Uuid) -> Result<Uuid, WebhookError> {
    if uuid.is_nil() {
        Err(WebhookError::Immutable(uuid))
    } else {
        Ok(uuid)
    }
}

/// `secret` redacted from byte `offset` on, as a node shows secrets.
fn hide_secret(secret: &mut String, offset: usize) {
    let keep = |extra: usize| {
        let mut at = (offset + extra).min(secret.len());
        while !secret.is_char_boundary(at) {
            at += 1;
        }
        at
    };
    match secret.len().checked_sub(offset) {
        None => {}
        Some(x) if x < 10 => {
            let at = keep(0);
            secret.replace_range(at.., "XXX...");
        }
        Some(x) if x < 20 => {
            let at = keep(2);
            secret.replace_range(at.., "XXXX...");
        }
        Some(x) if x < 30 => {
            let at = keep(3);
            secret.replace_range(at.., "XXXXX...");
        }
        Some(_) => {
            let at = keep(5);
            secret.replace_range(at.., "XXXXXX...");
        }
    }
}

/// The webhook as the API shows it: its uuid, whether it may be edited, its URL, and its
/// headers with any `Authorization` value redacted.
pub fn view(uuid: Uuid, webhook: &Webhook) -> Value {
    let mut headers = webhook.headers.clone();
    for (name, value) in headers.iter_mut() {
        if name.eq_ignore_ascii_case("authorization") {
            let offset = if value.starts_with("Bearer ") {
                "Bearer ".len()
            } else {
                0
            };
            hide_secret(value, offset);
        }
    }
    json!({"uuid": uuid.to_string(), "isEditable": !uuid.is_nil(), "url": webhook.url, "headers": headers})
}

fn check(uuid: Uuid, webhook: &Webhook) -> Result<(), WebhookError> {
    use WebhookError::*;
    if uuid.is_nil() {
        return Err(Immutable(uuid));
    }
    if webhook.url.is_empty() {
        return Err(MissingUrl(uuid));
    }
    if webhook.headers.len() > MAX_HEADERS {
        return Err(TooManyHeaders(uuid));
    }
    for (name, value) in &webhook.headers {
        http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| InvalidHeaderName(name.clone(), e.to_string()))?;
        http::HeaderValue::from_str(value)
            .map_err(|e| InvalidHeaderValue(name.clone(), e.to_string()))?;
    }
    url::Url::parse(&webhook.url).map_err(|e| InvalidUrl(webhook.url.clone(), e.to_string()))?;
    Ok(())
}

/// A new webhook from a `POST /webhooks` body a node accepts the shape of, given how many
/// there are already.
pub fn create(uuid: Uuid, body: &Value, existing: usize) -> Result<Webhook, WebhookError> {
    let headers = body["headers"].as_object();
    if headers.is_some_and(|h| h.len() > MAX_HEADERS) {
        return Err(WebhookError::TooManyHeaders(uuid));
    }
    if existing >= MAX_WEBHOOKS {
        return Err(WebhookError::TooMany);
    }
    let url = body["url"]
        .as_str()
        .ok_or(WebhookError::MissingUrl(uuid))?
        .to_string();
    let headers = headers
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    let webhook = Webhook { url, headers };
    check(uuid, &webhook)?;
    Ok(webhook)
}

/// `old` changed by a `PATCH /webhooks/{uuid}` body: a field absent is kept, `null` resets
/// it (a URL cannot be reset; a header set to `null` is removed).
pub fn patch(uuid: Uuid, old: &Webhook, body: &Value) -> Result<Webhook, WebhookError> {
    let mut webhook = old.clone();
    match body.get("url") {
        Some(Value::String(url)) => webhook.url = url.clone(),
        Some(Value::Null) => return Err(WebhookError::MissingUrl(uuid)),
        _ => {}
    }
    match body.get("headers") {
        Some(Value::Object(changes)) => {
            for (name, value) in changes {
                match value {
                    Value::String(v) => {
                        webhook.headers.insert(name.clone(), v.clone());
                    }
                    _ => {
                        webhook.headers.remove(name);
                    }
                }
            }
        }
        Some(Value::Null) => webhook.headers.clear(),
        _ => {}
    }
    if webhook.headers.len() > MAX_HEADERS {
        return Err(WebhookError::TooManyHeaders(uuid));
    }
    check(uuid, &webhook)?;
    Ok(webhook)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(url: &str, headers: &[(&str, &str)]) -> Webhook {
        Webhook {
            url: url.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn authorization_is_redacted_as_a_node_redacts_it() {
        let u = Uuid::from_u128(7);
        let w = hook(
            "https://x.test/h",
            &[
                (
                    "authorization",
                    "Bearer abcdefghijklmnopqrstuvwxyz0123456789",
                ),
                ("X-Other", "visible"),
            ],
        );
        let v = view(u, &w);
        assert_eq!(v["headers"]["authorization"], "Bearer abcdeXXXXXX...");
        assert_eq!(v["headers"]["X-Other"], "visible");
        assert_eq!(v["isEditable"], true);
        let short = view(u, &hook("https://x.test", &[("Authorization", "secret")]));
        assert_eq!(short["headers"]["Authorization"], "XXX...");
    }

    #[test]
    fn writes_are_checked_in_a_nodes_order() {
        let u = Uuid::from_u128(9);
        let ok = create(
            u,
            &json!({"url": "https://x.test/h", "headers": {"a": "1"}}),
            0,
        )
        .unwrap();
        assert_eq!(ok, hook("https://x.test/h", &[("a", "1")]));
        assert_eq!(
            create(u, &json!({"url": "https://x.test"}), 20),
            Err(WebhookError::TooMany)
        );
        assert_eq!(create(u, &json!({}), 0), Err(WebhookError::MissingUrl(u)));
        assert!(matches!(
            create(u, &json!({"url": "not a url"}), 0),
            Err(WebhookError::InvalidUrl(..))
        ));
        assert!(matches!(
            create(
                u,
                &json!({"url": "https://x.test", "headers": {"bad name": "v"}}),
                0
            ),
            Err(WebhookError::InvalidHeaderName(..))
        ));
        let patched = patch(u, &ok, &json!({"headers": {"a": null, "b": "2"}})).unwrap();
        assert_eq!(patched, hook("https://x.test/h", &[("b", "2")]));
        assert_eq!(
            patch(u, &ok, &json!({"url": null})),
            Err(WebhookError::MissingUrl(u))
        );
        assert_eq!(
            patch(u, &ok, &json!({"headers": null}))
                .unwrap()
                .headers
                .len(),
            0
        );
        assert_eq!(WebhookError::NotFound(u).to_meili().status, 404);
        assert!(parse_uuid("nope").is_err());
    }
}
