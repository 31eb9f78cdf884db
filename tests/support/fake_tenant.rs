//! Tenant tokens as a Meilisearch node checks them: an HS256 JWT signed with an API key's
//! string, naming the key by `apiKeyUid`, that may search the indexes of its `searchRules`,
//! each rule's filter added to the client's.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

use super::http::Message;

/// The claims of a token whose signature and expiry hold, signed by one of `keys` that may
/// search; `None` otherwise (the node answers `invalid_api_key`).
pub fn verify(keys: &[Value], token: &str) -> Option<Value> {
    let mut parts = token.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims: Value = serde_json::from_slice(&b64.decode(payload).ok()?).ok()?;
    let key = keys.iter().find(|k| k["uid"] == claims["apiKeyUid"])?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key["key"].as_str()?.as_bytes()).ok()?;
    mac.update(format!("{header}.{payload}").as_bytes());
    mac.verify_slice(&b64.decode(signature).ok()?).ok()?;
    let searches = key["actions"]
        .as_array()?
        .iter()
        .any(|a| a == "*" || a == "search");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let fresh = claims["exp"].as_i64().is_none_or(|exp| exp > now);
    (searches && fresh).then_some(claims)
}

/// A token for `key` (its uid and key string) with these rules, as an SDK signs one.
pub fn sign(uid: &str, key: &str, rules: Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = b64.encode(json!({"apiKeyUid": uid, "searchRules": rules}).to_string());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(format!("{header}.{payload}").as_bytes());
    let signature = b64.encode(mac.finalize().into_bytes());
    format!("{header}.{payload}.{signature}")
}

/// The rule of `index` in `rules`: `None` if the token may not search it, else the filter to
/// add (`Value::Null`: none).
fn rule(rules: &Value, index: &str) -> Option<Value> {
    let matches = |pattern: &str| {
        pattern == index
            || pattern
                .strip_suffix('*')
                .is_some_and(|prefix| index.starts_with(prefix))
    };
    match rules {
        Value::Array(patterns) => patterns
            .iter()
            .any(|p| p.as_str().is_some_and(matches))
            .then_some(Value::Null),
        Value::Object(map) => {
            // An exact name wins over a pattern.
            if let Some(r) = map.get(index) {
                return Some(r["filter"].clone());
            }
            map.iter()
                .find(|(p, _)| matches(p))
                .map(|(_, r)| r["filter"].clone())
        }
        _ => None,
    }
}

/// `filter` with the rule's filter added, as Meilisearch fuses them.
fn fused(rule: Value, filter: &Value) -> Value {
    match (rule, filter) {
        (Value::Null, f) => f.clone(),
        (r, Value::Null) => r,
        (r, Value::Array(f)) => Value::Array(std::iter::once(r).chain(f.iter().cloned()).collect()),
        (r, f) => json!([r, f]),
    }
}

/// The request a token holding `claims` makes: its search with the rules applied, `None` if
/// the token may not make it.
pub fn apply(claims: &Value, req: &Message, segs: &[&str]) -> Option<Message> {
    let rules = &claims["searchRules"];
    let mut body: Value = serde_json::from_slice(&req.body).ok()?;
    match (req.method.as_str(), segs) {
        ("POST", ["indexes", index, "search"]) => {
            let r = rule(rules, index)?;
            body["filter"] = fused(r, &body["filter"]);
        }
        ("POST", ["multi-search"]) => {
            for query in body["queries"].as_array_mut()? {
                let index = query["indexUid"].as_str()?.to_string();
                let r = rule(rules, &index)?;
                query["filter"] = fused(r, &query["filter"]);
            }
        }
        _ => return None,
    }
    let mut req = req.clone();
    req.body = serde_json::to_vec(&body).ok()?;
    Some(req)
}
