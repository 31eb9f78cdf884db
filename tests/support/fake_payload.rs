//! A document payload as a test node reads it: JSON, NDJSON or CSV, gzip or not, with the
//! errors Meilisearch v1.50 gives for each.

use serde_json::{json, Map, Value};

use super::fake_export_job::gunzip_stored;
use super::fake_meili::param;
use super::fake_node::{error, Answer};
use super::http::Message;

pub(super) fn parse_documents(req: &Message) -> Result<Vec<Map<String, Value>>, Answer> {
    let ct = req.header("content-type").unwrap_or("");
    let gunzipped;
    let body = match req.header("content-encoding") {
        Some(e) if e.eq_ignore_ascii_case("gzip") => {
            gunzipped = gunzip_stored(&req.body).ok_or_else(|| {
                error(
                    400,
                    "malformed_payload",
                    "invalid_request",
                    "The fake node reads only gzip made of stored blocks (as its exports send).",
                )
            })?;
            &gunzipped[..]
        }
        _ => &req.body[..],
    };
    let docs: Vec<Value> = if ct.starts_with("application/json") {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Array(a)) => a,
            Ok(o @ Value::Object(_)) => vec![o],
            _ => {
                return Err(error(
                    400,
                    "malformed_payload",
                    "invalid_request",
                    "The `json` payload provided is malformed.",
                ))
            }
        }
    } else if ct.starts_with("application/x-ndjson") {
        serde_json::Deserializer::from_slice(body)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()
            .map_err(|_| {
                error(
                    400,
                    "malformed_payload",
                    "invalid_request",
                    "The `ndjson` payload provided is malformed.",
                )
            })?
    } else if ct.starts_with("text/csv") {
        let delimiter = param(req, "csvDelimiter")
            .and_then(|d| d.bytes().next())
            .unwrap_or(b',');
        let mut r = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .from_reader(body);
        let headers = r
            .headers()
            .map_err(|_| error(400, "malformed_payload", "invalid_request", "csv"))?
            .clone();
        let mut out = Vec::new();
        for rec in r.records() {
            let rec = rec.map_err(|_| error(400, "malformed_payload", "invalid_request", "csv"))?;
            let mut o = Map::new();
            for (h, v) in headers.iter().zip(rec.iter()) {
                let (name, number) = match h.rsplit_once(':') {
                    Some((n, "number")) => (n, true),
                    _ => (h, false),
                };
                let value = if v.is_empty() {
                    Value::Null
                } else if number {
                    v.trim()
                        .parse::<i64>()
                        .map(Value::from)
                        .unwrap_or_else(|_| json!(v.trim().parse::<f64>().unwrap_or(0.0)))
                } else {
                    Value::from(v)
                };
                o.insert(name.to_string(), value);
            }
            out.push(Value::Object(o));
        }
        out
    } else {
        return Err(error(
            415,
            "missing_content_type",
            "invalid_request",
            "A Content-Type header is missing.",
        ));
    };
    docs.into_iter()
        .map(|d| match d {
            Value::Object(o) => Ok(o),
            _ => Err(error(500, "internal", "internal", "not a map")),
        })
        .collect()
}
