//! Document browsing, `GET /indexes/{uid}/documents` and `POST .../documents/fetch`: every
//! shard asked for `offset + limit` documents, merged by the `sort` rules when given, and
//! the client's window taken from the merged list; `total` summed.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::placement::and_filter;
use super::{relay, unreachable, Request};
use crate::cluster::Cluster;
use crate::merge::raw::{elements, members};
use crate::merge::score::compare_sort_values;
use crate::respond::Reply;
use crate::shard_tag;
use crate::tasks::query::pairs;

/// `GET` browse parameters as a fetch body; `None` for anything else (a node judges).
fn get_params_to_body(query: &str) -> Option<Map<String, Value>> {
    let mut body = Map::new();
    let list = |v: &str| Value::Array(v.split(',').map(|s| Value::from(s.trim())).collect());
    for (k, v) in pairs(query) {
        let value = match k.as_str() {
            "offset" | "limit" => Value::from(v.parse::<u64>().ok()?),
            "fields" | "sort" | "ids" => list(&v),
            "filter" => Value::from(v),
            "retrieveVectors" => Value::from(v.parse::<bool>().ok()?),
            _ => return None,
        };
        body.insert(k, value);
    }
    Some(body)
}

/// A value at a dotted path of a document.
fn field<'v>(doc: &'v Value, path: &str) -> &'v Value {
    if let Some(v) = doc.get(path) {
        return v;
    }
    let mut cur = doc;
    for part in path.split('.') {
        cur = match cur.get(part) {
            Some(v) => v,
            None => return &Value::Null,
        };
    }
    cur
}

pub async fn browse(cluster: &Cluster<'_>, req: &Request<'_>) -> Reply {
    let index = req.route.index.clone().unwrap_or_default();
    let body = if req.method == http::Method::GET {
        get_params_to_body(req.query)
    } else {
        match serde_json::from_slice::<Value>(&req.body) {
            Ok(Value::Object(o)) => Some(o),
            _ => None,
        }
    };
    let Some(body) = body else {
        return match cluster.send_any(&req.forward()).await {
            Ok((_, resp)) => relay(&resp),
            Err(e) => unreachable(&e.to_string()),
        };
    };
    let offset = body.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize;
    let limit = body.get("limit").and_then(Value::as_u64).unwrap_or(20) as usize;
    let sort: Vec<(String, bool)> = body
        .get("sort")
        .and_then(Value::as_array)
        .map(|rules| {
            rules
                .iter()
                .filter_map(Value::as_str)
                .filter_map(|r| r.rsplit_once(':').map(|(f, d)| (f.to_string(), d == "asc")))
                .collect()
        })
        .unwrap_or_default();
    let mut shard_body = body.clone();
    shard_body.insert("offset".into(), Value::from(0));
    shard_body.insert("limit".into(), Value::from(offset + limit));
    // Sort fields must come back to order the merge; they are removed after.
    let mut strip = Vec::new();
    if let Some(Value::Array(fields)) = shard_body.get_mut("fields") {
        if !fields.iter().any(|f| f == "*") {
            for (f, _) in &sort {
                if !fields.iter().any(|x| x == f.as_str()) {
                    fields.push(Value::from(f.clone()));
                    strip.push(f.clone());
                }
            }
        }
    }
    let path = format!("/indexes/{index}/documents/fetch");
    let body_for = |t: &super::placement::Target| {
        let mut b = shard_body.clone();
        if let Some(f) = &t.filter {
            let combined = and_filter(body.get("filter"), f);
            b.insert("filter".into(), combined);
        }
        serde_json::to_vec(&b).unwrap_or_default()
    };
    let answers = match super::search::gather(cluster, req, &path, &body_for).await {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    // Each document stays as bytes; only the sort fields are read.
    let mut docs: Vec<(usize, (usize, usize), Vec<Value>)> = Vec::new();
    let mut total = 0u64;
    for (a, resp) in answers.iter().enumerate() {
        let buf = &resp.body[..];
        for m in members(buf, 0) {
            match &buf[m.key.0..m.key.1] {
                b"results" => {
                    for range in elements(buf, m.value.0) {
                        let keys: Vec<Value> = if sort.is_empty() {
                            Vec::new()
                        } else {
                            let doc: Value = serde_json::from_slice(&buf[range.0..range.1])
                                .unwrap_or(Value::Null);
                            sort.iter().map(|(f, _)| field(&doc, f).clone()).collect()
                        };
                        docs.push((a, range, keys));
                    }
                }
                b"total" => {
                    total += std::str::from_utf8(&buf[m.value.0..m.value.1])
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                        .unwrap_or(0)
                }
                _ => {}
            }
        }
    }
    if !sort.is_empty() {
        // A stable sort keeps each shard's own order among equal keys.
        docs.sort_by(|x, y| {
            for (i, (_, asc)) in sort.iter().enumerate() {
                match compare_sort_values(*asc, &x.2[i], &y.2[i]) {
                    Ordering::Equal => continue,
                    o => return o.reverse(),
                }
            }
            Ordering::Equal
        });
    }
    let drop =
        |k: &[u8]| k == shard_tag::FIELD.as_bytes() || strip.iter().any(|s| s.as_bytes() == k);
    let mut out = Vec::from(&b"{\"results\":["[..]);
    for (n, (a, range, _)) in docs.iter().skip(offset).take(limit).enumerate() {
        if n > 0 {
            out.push(b',');
        }
        crate::merge::raw::write_object_without(
            &answers[*a].body,
            *range,
            &drop,
            &|_| false,
            &mut out,
        );
    }
    out.extend_from_slice(
        format!("],\"offset\":{offset},\"limit\":{limit},\"total\":{total}}}").as_bytes(),
    );
    Reply::json(200, out)
}
