//! Document browsing, `GET /indexes/{uid}/documents` and `POST .../documents/fetch`: every
//! shard asked for `offset + limit` documents (with the fields its `sort` needs, or the
//! insertion order without one), merged by [`crate::merge::documents`].

use serde_json::{json, Map, Value};

use super::{relay, unreachable, Request};
use crate::cluster::Cluster;
use crate::merge::{merge_documents, BrowsePlan};
use crate::query_string::pairs;
use crate::respond::Reply;
use crate::shard_tag::{self, and_filter, guard};

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

/// Every shard's answer to `shard_body`, the client's filter ANDed with the shard's.
async fn gather(
    cluster: &Cluster<'_>,
    req: &Request<'_>,
    path: &str,
    client: &Map<String, Value>,
    shard_body: &Map<String, Value>,
) -> Result<Vec<crate::transport::NodeResponse>, Reply> {
    let body_for = |t: &crate::attempts::Target| {
        let mut b = shard_body.clone();
        if let Some(f) = &t.filter {
            let combined = and_filter(client.get("filter"), f);
            b.insert("filter".into(), combined);
        }
        serde_json::to_vec(&b).unwrap_or_default()
    };
    super::search::gather(cluster, req, path, &body_for).await
}

/// Whether a node refused to sort by the insertion order (the only sort asked).
fn refuses_order(reply: &Reply) -> bool {
    reply.status == 400
        && serde_json::from_slice::<Value>(&reply.body)
            .is_ok_and(|v| v["code"] == "invalid_document_sort")
}

pub async fn browse(cluster: &Cluster<'_>, req: &Request<'_>) -> Reply {
    let index = req.route.index.clone().unwrap_or_default();
    let mut body = if req.method == http::Method::GET {
        get_params_to_body(req.query)
    } else {
        req.json_object()
    };
    if let Some(b) = body.as_mut() {
        guard::rename_in_query(b);
    }
    // A count a node would refuse (`null`, a string ...) is its to judge.
    let count = |b: &Map<String, Value>, name: &str, default: u64| match b.get(name) {
        None => Some(default as usize),
        Some(v) => v.as_u64().map(|n| n as usize),
    };
    let window = body
        .as_ref()
        .and_then(|b| Some((count(b, "offset", 0)?, count(b, "limit", 20)?)));
    let (Some(body), Some((offset, limit))) = (body, window) else {
        return match cluster.send_any(&req.forward()).await {
            Ok((_, resp)) => relay(&resp),
            Err(e) => unreachable(&e.to_string()),
        };
    };
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
    // Sort fields (or, without `sort`, the insertion order) must come back to order the
    // merge; they are removed after.
    let mut strip = Vec::new();
    let order = [(shard_tag::order::FIELD.to_string(), true)];
    let needed = if sort.is_empty() { &order[..] } else { &sort };
    if let Some(Value::Array(fields)) = shard_body.get_mut("fields") {
        if !fields.iter().any(|f| f == "*") {
            for (f, _) in needed {
                if !fields.iter().any(|x| x == f.as_str()) {
                    fields.push(Value::from(f.clone()));
                    strip.push(f.clone());
                }
            }
        }
    }
    // Without `sort`, each node lists its documents by insertion order (an index created
    // before the gateway kept that order sortable refuses: it lists them in its own order).
    let by_order = sort.is_empty();
    if by_order {
        shard_body.insert(
            "sort".into(),
            json!([format!("{}:asc", shard_tag::order::FIELD)]),
        );
    }
    let path = format!("/indexes/{index}/documents/fetch");
    let mut answers = gather(cluster, req, &path, &body, &shard_body).await;
    if by_order && answers.as_ref().is_err_and(refuses_order) {
        shard_body.remove("sort");
        answers = gather(cluster, req, &path, &body, &shard_body).await;
    }
    let answers = match answers {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    let plan = BrowsePlan {
        offset,
        limit,
        sort,
        strip,
    };
    super::search::merged(cluster, &answers, |bodies| merge_documents(bodies, &plan))
}
