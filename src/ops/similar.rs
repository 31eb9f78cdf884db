//! `GET|POST /indexes/{uid}/similar`: the document lives on one shard, its neighbours on all.
//! The owner of its shard runs the request first (so every error is a node's, the missing
//! document included) and gives the document's embedding; then a search by that vector
//! (`semanticRatio` 1, which scores exactly as `/similar` does) is merged over every shard,
//! one more hit than the window, and the document itself is taken out, as a node leaves it
//! out of its own neighbours.

use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::{json, Map, Value};

use super::reads::from_owner;
use super::{relay, unreachable, Request, Services};
use crate::cluster::Cluster;
use crate::query_string::pairs;
use crate::respond::Reply;
use crate::routes::{Endpoint, Route};
use crate::transport::NodeRequest;

/// The request as a `POST` body; `None` for what a node would not read the same way.
fn query(req: &Request<'_>) -> Option<Map<String, Value>> {
    if req.method != Method::GET {
        return req.json_object();
    }
    let mut body = Map::new();
    for (k, v) in pairs(req.query) {
        let value = match k.as_str() {
            "id" | "embedder" | "filter" => Value::from(v),
            "offset" | "limit" => Value::from(v.parse::<u64>().ok()?),
            "attributesToRetrieve" => v.split(',').map(|s| Value::from(s.trim())).collect(),
            "retrieveVectors"
            | "showRankingScore"
            | "showRankingScoreDetails"
            | "showPerformanceDetails" => Value::from(v.parse::<bool>().ok()?),
            "rankingScoreThreshold" => Value::from(v.parse::<f64>().ok()?),
            _ => return None,
        };
        body.insert(k, value);
    }
    Some(body)
}

/// The document's first embedding for `embedder`, as a document read shows it.
fn embedding(document: &Value, embedder: &str) -> Option<Value> {
    let vectors = &document["_vectors"][embedder];
    // `{"embeddings": [...], "regenerate": ..}`, or the embeddings themselves.
    let embeddings = vectors.get("embeddings").unwrap_or(vectors);
    // One vector, or a list of them (the first is taken).
    match embeddings.get(0)? {
        first @ Value::Array(_) => Some(first.clone()),
        _ => Some(embeddings.clone()),
    }
}

pub async fn similar(cluster: &Cluster<'_>, services: &Services, req: &Request<'_>) -> Reply {
    let started = Instant::now();
    let index = req.route.index.clone().unwrap_or_default();
    let q = query(req);
    let id = q.as_ref().and_then(|q| match q.get("id") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    });
    let (Some(q), Some(id)) = (q, id) else {
        return match cluster.send_any(&req.forward()).await {
            Ok((_, resp)) => relay(&resp),
            Err(e) => unreachable(&e.to_string()),
        };
    };
    // The owner judges the request (and holds the document).
    match from_owner(cluster, &id, &req.forward()).await {
        Ok(resp) if resp.status == 200 => {}
        Ok(resp) => return relay(&resp),
        Err(e) => return unreachable(&e),
    }
    let embedder = q
        .get("embedder")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let path = format!(
        "/indexes/{index}/documents/{}?retrieveVectors=true",
        crate::query_string::percent_encode(&id)
    );
    let mut read = NodeRequest::get(path);
    read.headers = req.forward().headers;
    let document = match from_owner(cluster, &id, &read).await {
        Ok(resp) if resp.status == 200 => serde_json::from_slice::<Value>(&resp.body).ok(),
        Ok(resp) => return relay(&resp),
        Err(e) => return unreachable(&e),
    };
    let Some(vector) = document.as_ref().and_then(|d| embedding(d, embedder)) else {
        // Nothing to compare with: the node's own answer.
        return match from_owner(cluster, &id, &req.forward()).await {
            Ok(resp) => relay(&resp),
            Err(e) => unreachable(&e),
        };
    };
    let primary_key = match services.indexes.lookup(cluster, &index).await {
        Ok(Some(info)) => info.primary_key,
        _ => None,
    };
    let Some(primary_key) = primary_key else {
        return unreachable("the index's primary key is unknown");
    };
    let offset = q.get("offset").and_then(Value::as_u64).unwrap_or(0);
    let limit = q.get("limit").and_then(Value::as_u64).unwrap_or(20);
    let mut body = json!({
        "vector": vector,
        "hybrid": {"embedder": embedder, "semanticRatio": 1.0},
        "offset": 0,
        "limit": offset + limit + 1,
    });
    for key in [
        "filter",
        "retrieveVectors",
        "showRankingScore",
        "showRankingScoreDetails",
        "showPerformanceDetails",
        "rankingScoreThreshold",
    ] {
        if let Some(v) = q.get(key) {
            body[key] = v.clone();
        }
    }
    // The primary key tells the document apart; shown only if the client asked for it.
    let mut hide_key = false;
    if let Some(Value::Array(fields)) = q.get("attributesToRetrieve") {
        let mut fields = fields.clone();
        let shown = fields.iter().any(|f| f == "*" || f == primary_key.as_str());
        if !shown {
            fields.push(Value::from(primary_key.clone()));
            hide_key = true;
        }
        body["attributesToRetrieve"] = Value::Array(fields);
    }
    let route = Route {
        endpoint: Endpoint::Search,
        ..req.route.clone()
    };
    let mut headers = HeaderMap::new();
    if let Some(auth) = req.headers.get(http::header::AUTHORIZATION) {
        headers.insert(http::header::AUTHORIZATION, auth.clone());
    }
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let search_path = format!("/indexes/{index}/search");
    let search = Request {
        method: &Method::POST,
        path: &search_path,
        query: "",
        headers: &headers,
        body: Bytes::from(body.to_string()),
        route: &route,
        upstream_headers: req.upstream_headers,
        received_at: req.received_at.clone(),
    };
    let reply = super::search::search(cluster, services, &search).await;
    if reply.status != 200 {
        return reply;
    }
    page(
        &reply.body,
        &id,
        &primary_key,
        hide_key,
        (offset, limit),
        started,
    )
    .map_or(reply, |body| Reply::json(200, body))
}

/// The merged search answer as `/similar` answers: without the document itself, in the
/// client's window, hits copied as they are (scores keep their digits).
fn page(
    merged: &[u8],
    id: &str,
    primary_key: &str,
    hide_key: bool,
    (offset, limit): (u64, u64),
    started: Instant,
) -> Option<Vec<u8>> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Merged<'a> {
        #[serde(borrow)]
        hits: Vec<&'a serde_json::value::RawValue>,
        estimated_total_hits: u64,
        processing_time_ms: u64,
        #[serde(borrow)]
        performance_details: Option<&'a serde_json::value::RawValue>,
    }
    let merged: Merged = serde_json::from_slice(merged).ok()?;
    let same = |hit: &serde_json::value::RawValue| {
        let v: Value = serde_json::from_str(hit.get()).unwrap_or(Value::Null);
        match &v[primary_key] {
            Value::String(s) => s == id,
            Value::Number(n) => n.to_string() == id,
            _ => false,
        }
    };
    let before = merged.hits.len();
    let hits: Vec<&serde_json::value::RawValue> =
        merged.hits.into_iter().filter(|h| !same(h)).collect();
    let itself = (before - hits.len()) as u64;
    let mut out = Vec::from(&b"{\"hits\":["[..]);
    for (n, hit) in hits
        .iter()
        .skip(offset as usize)
        .take(limit as usize)
        .enumerate()
    {
        if n > 0 {
            out.push(b',');
        }
        let bytes = hit.get().as_bytes();
        if hide_key {
            let drop = |k: &[u8]| k == primary_key.as_bytes();
            crate::merge::raw::write_object_without(
                bytes,
                (0, bytes.len()),
                &drop,
                &|_| false,
                &mut out,
            );
        } else {
            out.extend_from_slice(bytes);
        }
    }
    let ms = merged.processing_time_ms + started.elapsed().as_millis() as u64;
    let total = merged.estimated_total_hits.saturating_sub(itself);
    out.extend_from_slice(
        format!(
            "],\"id\":{},\"processingTimeMs\":{ms},\"limit\":{limit},\"offset\":{offset},\"estimatedTotalHits\":{total}",
            Value::from(id)
        )
        .as_bytes(),
    );
    if let Some(details) = merged.performance_details {
        out.extend_from_slice(b",\"performanceDetails\":");
        out.extend_from_slice(details.get().as_bytes());
    }
    out.push(b'}');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_embedding_of_the_embedder() {
        let doc = json!({"id": 1, "_vectors": {"e": {"embeddings": [[0.1, 0.2], [0.3, 0.4]], "regenerate": false}}});
        assert_eq!(embedding(&doc, "e"), Some(json!([0.1, 0.2])));
        let plain = json!({"_vectors": {"e": [0.5, 0.6]}});
        assert_eq!(embedding(&plain, "e"), Some(json!([0.5, 0.6])));
        assert_eq!(embedding(&doc, "other"), None);
    }
}
