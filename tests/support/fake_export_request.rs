//! The test node's `/export` request, validated as Meilisearch v1.50 does: deserr's
//! messages, index patterns, payload sizes, and the networks a node may push to.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{json, Map, Value};

use super::fake_node::{error, Answer};
use super::http::Message;

/// A `POST /export` body, validated.
#[derive(Clone)]
pub struct ExportRequest {
    pub(super) url: String,
    pub(super) api_key: Option<String>,
    pub(super) payload_size: Option<u64>,
    /// `filter` and `overrideSettings` by index pattern, in pattern order.
    pub(super) indexes: BTreeMap<String, (Value, bool)>,
}

/// How deserr names a value in its errors.
pub(super) fn found(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(_) => format!("a boolean: `{v}`"),
        Value::Number(n) if n.is_u64() => format!("a positive integer: `{v}`"),
        Value::Number(n) if n.is_i64() => format!("a negative integer: `{v}`"),
        Value::Number(_) => format!("a number: `{v}`"),
        Value::String(_) => format!("a string: `{v}`"),
        Value::Array(_) => format!("an array: `{v}`"),
        Value::Object(_) => format!("an object: `{v}`"),
    }
}

pub(super) fn valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 400
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(super) fn pattern_matches(pattern: &str, uid: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => uid.starts_with(prefix),
        None => pattern == uid,
    }
}

/// A byte size as Meilisearch reads `payloadSize` (`"24MiB"`, `"10 MB"`, `"512kb"`: a
/// lowercase `b` counts bits).
pub(super) fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let Some(first) = s.chars().next() else {
        return Err("no value can be found".to_string());
    };
    if !first.is_ascii_digit() {
        return Err(format!("the character {first:?} is not a number"));
    }
    let digits = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let value: f64 = s[..digits]
        .parse()
        .map_err(|_| "the character '.' is not a number".to_string())?;
    let unit = s[digits..].trim_start();
    let mut chars = unit.chars();
    let power = match chars.next() {
        None => return Ok(value.ceil() as u64),
        Some(c) => match c.to_ascii_uppercase() {
            'B' => 0,
            'K' => 1,
            'M' => 2,
            'G' => 3,
            'T' => 4,
            'P' => 5,
            'E' => 6,
            _ => {
                return Err(format!(
                    "the character {c:?} is incorrect ('B', 'K', 'M', 'G', 'T', 'P', 'E' or no character or no character is expected)"
                ))
            }
        },
    };
    let rest: String = chars.collect();
    let (base, rest) = match rest.strip_prefix(['i', 'I']) {
        Some(r) if power > 0 => (1024f64, r),
        _ => (1000f64, rest.as_str()),
    };
    let bits = match (power, unit.chars().next(), rest) {
        (0, Some('b'), "") => true,
        (0, _, "") => false,
        (_, _, "") | (_, _, "B") => false,
        (_, _, "b") => true,
        (_, _, r) => {
            return Err(format!(
                "the character {:?} is incorrect ('B' or 'b' or no character is expected)",
                r.chars().next().unwrap()
            ))
        }
    };
    let bytes = value * base.powi(power);
    Ok(if bits { bytes / 8.0 } else { bytes }.ceil() as u64)
}

/// A byte size as Meilisearch shows it in task details (`"24 MiB"`, `"1 MB"`, `"60 B"`).
pub(super) fn format_bytes(n: u64) -> String {
    let units = [
        ("EiB", 1u64 << 60),
        ("EB", 1_000_000_000_000_000_000),
        ("PiB", 1 << 50),
        ("PB", 1_000_000_000_000_000),
        ("TiB", 1 << 40),
        ("TB", 1_000_000_000_000),
        ("GiB", 1 << 30),
        ("GB", 1_000_000_000),
        ("MiB", 1 << 20),
        ("MB", 1_000_000),
        ("KiB", 1 << 10),
        ("KB", 1_000),
    ];
    match units.iter().find(|(_, size)| n >= *size) {
        Some((name, size)) => format!("{} {name}", n as f64 / *size as f64),
        None => format!("{n} B"),
    }
}

/// How task details show an API key.
pub(super) fn hide_secret(key: &str) -> String {
    match key.len() {
        n if n < 10 => "XXX...".to_string(),
        n if n < 20 => format!("{}XXXX...", &key[..2]),
        n if n < 30 => format!("{}XXXXX...", &key[..3]),
        _ => format!("{}XXXXXX...", &key[..5]),
    }
}

pub(super) fn parse_export(req: &Message) -> Result<ExportRequest, Answer> {
    let bad = |code: &str, message: &str| error(400, code, "invalid_request", message);
    match req.header("content-type") {
        None => return Err(error(415, "missing_content_type", "invalid_request", "A Content-Type header is missing. Accepted values for the Content-Type header are: `application/json`")),
        Some(ct) if !ct.starts_with("application/json") => return Err(error(415, "invalid_content_type", "invalid_request", &format!("The Content-Type `{ct}` is invalid. Accepted values for the Content-Type header are: `application/json`"))),
        _ => {}
    }
    if req.body.is_empty() {
        return Err(bad("missing_payload", "A json payload is missing."));
    }
    let body: Value = serde_json::from_slice(&req.body).map_err(|e| {
        bad(
            "malformed_payload",
            &format!("The json payload provided is malformed. `{e}`."),
        )
    })?;
    let Value::Object(fields) = &body else {
        let message = format!(
            "Invalid value type: expected an object, but found {}",
            found(&body)
        );
        return Err(bad("bad_request", &message));
    };
    let mut request = ExportRequest {
        url: String::new(),
        api_key: None,
        payload_size: None,
        indexes: BTreeMap::from([("*".to_string(), (Value::Null, false))]),
    };
    for (name, value) in fields {
        let wrong = |code: &str, what: &str| {
            let message = format!(
                "Invalid value type at `.{name}`: expected {what}, but found {}",
                found(value)
            );
            Err(bad(code, &message))
        };
        match (name.as_str(), value) {
            ("url", Value::String(url)) => request.url = url.clone(),
            ("url", _) => return wrong("invalid_export_url", "a string"),
            ("apiKey", Value::String(key)) => request.api_key = Some(key.clone()),
            ("apiKey", Value::Null) => {}
            ("apiKey", _) => return wrong("invalid_export_api_key", "a string"),
            ("payloadSize", Value::Null) => {}
            ("payloadSize", Value::Number(n)) if n.is_u64() => request.payload_size = n.as_u64(),
            ("payloadSize", Value::String(s)) => {
                let size = parse_bytes(s).map_err(|m| {
                    bad(
                        "invalid_export_payload_size",
                        &format!("Invalid value at `.payloadSize`: {m}"),
                    )
                })?;
                request.payload_size = Some(size);
            }
            ("payloadSize", _) => {
                return wrong(
                    "invalid_export_payload_size",
                    "a positive integer or a string",
                )
            }
            ("indexes", Value::Null) => {}
            ("indexes", Value::Object(patterns)) => {
                request.indexes.clear();
                for (pattern, settings) in patterns {
                    let valid = match pattern.strip_suffix('*') {
                        Some("") => true,
                        Some(prefix) => valid_uid(prefix),
                        None => valid_uid(pattern),
                    };
                    if !valid {
                        let message = format!("Invalid value at `.indexes`: the key {} could not be deserialized into the key type `meilisearch_types::index_uid_pattern::IndexUidPattern`", Value::from(pattern.as_str()));
                        return Err(bad("bad_request", &message));
                    }
                    let Value::Object(settings) = settings else {
                        let message = format!(
                            "Invalid value type at `.indexes.{pattern}`: expected an object, but found {}",
                            found(settings)
                        );
                        return Err(bad("bad_request", &message));
                    };
                    let (mut filter, mut override_settings) = (Value::Null, false);
                    for (name, value) in settings {
                        match (name.as_str(), value) {
                            ("filter", v) => filter = v.clone(),
                            ("overrideSettings", Value::Bool(b)) => override_settings = *b,
                            ("overrideSettings", v) => {
                                let message = format!("Invalid value type at `.indexes.{pattern}.overrideSettings`: expected a boolean, but found {}", found(v));
                                return Err(bad(
                                    "invalid_export_index_override_settings",
                                    &message,
                                ));
                            }
                            (other, _) => {
                                let message = format!("Unknown field `{other}` inside `.indexes.{pattern}`: expected one of `filter`, `overrideSettings`");
                                return Err(bad("bad_request", &message));
                            }
                        }
                    }
                    request
                        .indexes
                        .insert(pattern.clone(), (filter, override_settings));
                }
            }
            ("indexes", _) => return wrong("bad_request", "an object"),
            (other, _) => {
                let message = format!("Unknown field `{other}`: expected one of `url`, `apiKey`, `payloadSize`, `indexes`");
                return Err(bad("bad_request", &message));
            }
        }
    }
    Ok(request)
}

/// An export task's details: `indexes` by pattern as asked (while enqueued or processing, or
/// when failed), or by index uid with `matched_documents` (snake case, as Meilisearch writes
/// it) once succeeded.
pub(super) fn export_details(request: &ExportRequest, indexes: Value) -> Value {
    let mut d = Map::new();
    d.insert("url".into(), json!(request.url));
    if let Some(key) = &request.api_key {
        d.insert("apiKey".into(), json!(hide_secret(key)));
    }
    if let Some(size) = request.payload_size {
        d.insert("payloadSize".into(), json!(format_bytes(size)));
    }
    d.insert("indexes".into(), indexes);
    Value::Object(d)
}

pub(super) fn requested_indexes(request: &ExportRequest) -> Value {
    Value::Object(
        request
            .indexes
            .iter()
            .map(|(p, (filter, o))| (p.clone(), json!({"filter": filter, "overrideSettings": o})))
            .collect(),
    )
}

/// A network of `--experimental-allowed-ip-networks`: `Some(None)` for `any`, else the
/// network address and prefix length; `None` when not one.
pub fn parse_network(s: &str) -> Option<Option<(IpAddr, u32)>> {
    if s.eq_ignore_ascii_case("any") {
        return Some(None);
    }
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => (ip.parse::<IpAddr>().ok()?, len.parse::<u32>().ok()?),
        None => {
            let ip = s.parse::<IpAddr>().ok()?;
            (ip, if ip.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some(Some((ip, len)))
}

/// Meilisearch's IP policy: public addresses always; others only inside an allowed network.
pub(super) fn ip_allowed(ip: IpAddr, allowed: &[String]) -> bool {
    let networks: Vec<_> = allowed.iter().filter_map(|n| parse_network(n)).collect();
    if networks.iter().any(Option::is_none) || is_global(ip) {
        return true;
    }
    networks
        .into_iter()
        .flatten()
        .any(|(net, len)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        })
}

/// Whether an address is public, as Meilisearch decides it (std's unstable `is_global`).
pub(super) fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            !(o[0] == 0
                || a.is_private()
                || (o[0] == 100 && (o[1] & 0b1100_0000) == 0b0100_0000)
                || a.is_loopback()
                || a.is_link_local()
                || (o[0] == 192 && o[1] == 0 && o[2] == 0 && o[3] != 9 && o[3] != 10)
                || a.is_documentation()
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || (o[0] & 240 == 240 && !a.is_broadcast())
                || a.is_broadcast())
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            !(a.is_unspecified()
                || a.is_loopback()
                || matches!(s, [0, 0, 0, 0, 0, 0xffff, _, _])
                || matches!(s, [0x64, 0xff9b, 1, _, _, _, _, _])
                || matches!(s, [0x100, 0, 0, 0, _, _, _, _])
                || (s[0] == 0x2001 && s[1] < 0x200)
                || s[0] == 0x2002
                || matches!(s, [0x2001, 0xdb8, ..] | [0x3fff, 0..=0x0fff, ..])
                || s[0] == 0x5f00
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80)
        }
    }
}
