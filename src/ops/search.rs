//! Scatter-gather reads: `/indexes/{uid}/search` (GET and POST), `/multi-search` (plain and
//! federated), `/indexes/{uid}/facet-search` and document browsing. One owner per shard is
//! asked (DESIGN §5 step 1), the answers merged by [`crate::merge`].

use std::time::Instant;

use http::Method;
use serde_json::{Map, Value};

pub(super) use super::gather::gather;
use super::placement::{and_filter, Target};
use super::{cpu_bound, relay, unreachable, Request, Services};
use crate::cluster::Cluster;
use crate::error::MeiliError;
use crate::merge::plan::{prepare, MergeSettings};
use crate::merge::{merge_search, ShardAnswer};
use crate::respond::Reply;
use crate::tasks::query::pairs;

/// The settings of `index`, asked of a node with the gateway's key (briefly cached).
pub(super) async fn merge_settings(
    cluster: &Cluster<'_>,
    services: &Services,
    index: &str,
) -> MergeSettings {
    if let Some(s) = services.indexes.settings(index) {
        return MergeSettings::from_settings(&s);
    }
    let req = cluster.own_request(crate::node_client::NodeRequest::get(format!(
        "/indexes/{index}/settings"
    )));
    match cluster.send_any(&req).await {
        Ok((_, resp)) if resp.status == 200 => {
            let s: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
            services.indexes.remember_settings(index, s.clone());
            MergeSettings::from_settings(&s)
        }
        _ => MergeSettings::from_settings(&Value::Null),
    }
}

/// Meilisearch's `GET` search parameters as a `POST` body; `None` for anything it would not
/// parse the same way (the node then answers the `GET` itself, errors included).
fn get_params_to_body(query: &str) -> Option<Map<String, Value>> {
    let mut body = Map::new();
    let list = |v: &str| Value::Array(v.split(',').map(|s| Value::from(s.trim())).collect());
    for (k, v) in pairs(query) {
        let value = match k.as_str() {
            "q" | "filter" | "distinct" | "matchingStrategy" | "highlightPreTag"
            | "highlightPostTag" | "cropMarker" => Value::from(v),
            "offset" | "limit" | "page" | "hitsPerPage" | "cropLength" => {
                Value::from(v.parse::<u64>().ok()?)
            }
            "attributesToRetrieve"
            | "attributesToCrop"
            | "attributesToHighlight"
            | "facets"
            | "sort"
            | "attributesToSearchOn"
            | "locales" => list(&v),
            "showMatchesPosition"
            | "showRankingScore"
            | "showRankingScoreDetails"
            | "retrieveVectors" => Value::from(v.parse::<bool>().ok()?),
            "rankingScoreThreshold" => Value::from(v.parse::<f64>().ok()?),
            "vector" => Value::Array(
                v.split(',')
                    .map(|x| x.trim().parse::<f64>().ok().map(Value::from))
                    .collect::<Option<Vec<_>>>()?,
            ),
            "hybridEmbedder" => {
                body.entry("hybrid")
                    .or_insert_with(|| Value::Object(Map::new()))["embedder"] = Value::from(v);
                continue;
            }
            "hybridSemanticRatio" => {
                body.entry("hybrid")
                    .or_insert_with(|| Value::Object(Map::new()))["semanticRatio"] =
                    Value::from(v.parse::<f64>().ok()?);
                continue;
            }
            _ => return None,
        };
        body.insert(k, value);
    }
    Some(body)
}

/// The body a target node gets: the shard body, with the target's shard filter.
pub(super) fn for_target(body: &Map<String, Value>, target: &Target) -> Map<String, Value> {
    let mut b = body.clone();
    if let Some(f) = &target.filter {
        let combined = and_filter(body.get("filter"), f);
        b.insert("filter".into(), combined);
    }
    b
}

/// `GET`/`POST /indexes/{uid}/search`.
pub async fn search(cluster: &Cluster<'_>, services: &Services, req: &Request<'_>) -> Reply {
    let started = Instant::now();
    let index = req.route.index.clone().unwrap_or_default();
    let query = if req.method == Method::GET {
        get_params_to_body(req.query)
    } else {
        match serde_json::from_slice::<Value>(&req.body) {
            Ok(Value::Object(o)) => Some(o),
            _ => None,
        }
    };
    let settings = merge_settings(cluster, services, &index).await;
    let Some(prepared) = query.as_ref().and_then(|q| prepare(q, &settings)) else {
        return judge(cluster, req).await;
    };
    let path = format!("/indexes/{index}/search");
    let body_for =
        |t: &Target| serde_json::to_vec(&for_target(&prepared.shard_body, t)).unwrap_or_default();
    let answers = match gather(cluster, req, &path, &body_for).await {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    let distinct = prepared.plan.distinct.clone();
    let merge_started = Instant::now();
    let merged = cpu_bound(|| {
        let shards: Result<Vec<ShardAnswer<'_>>, _> = answers
            .iter()
            .map(|a| ShardAnswer::parse(&a.body, distinct.as_deref()))
            .collect();
        shards.and_then(|mut s| {
            merge_search(&mut s, &prepared.plan, started.elapsed().as_millis() as u64)
        })
    });
    cluster
        .metrics
        .merge_duration
        .observe(merge_started.elapsed().as_secs_f64());
    match merged {
        Ok(body) => Reply::json(200, body),
        Err(e) => Reply::error(&MeiliError::internal(format!(
            "cannot merge shard answers: {}",
            e.0
        ))),
    }
}

/// A request the merge cannot read: one node answers it as is (its error, usually).
pub(super) async fn judge(cluster: &Cluster<'_>, req: &Request<'_>) -> Reply {
    match cluster.send_any(&req.forward()).await {
        Ok((_, resp)) => relay(&resp),
        Err(e) => unreachable(&e.to_string()),
    }
}

/// The range of `results[i]` in a node's plain multi-search answer.
pub(super) fn result_ranges(buf: &[u8]) -> Vec<(usize, usize)> {
    use crate::merge::raw::{elements, members};
    let start = buf
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    members(buf, start)
        .into_iter()
        .find(|m| &buf[m.key.0..m.key.1] == b"results")
        .map(|m| elements(buf, m.value.0))
        .unwrap_or_default()
}

/// `POST /multi-search`: every query merged like a search; all the queries a node answers
/// travel in one request. Federated requests are merged by [`federated`].
pub async fn multi_search(cluster: &Cluster<'_>, services: &Services, req: &Request<'_>) -> Reply {
    let started = Instant::now();
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&req.body) else {
        return judge(cluster, req).await;
    };
    if body.get("federation").is_some_and(|f| !f.is_null()) {
        return super::federated::federated(cluster, services, req, body).await;
    }
    let Some(Value::Array(queries)) = body.get("queries") else {
        return judge(cluster, req).await;
    };
    let mut prepared = Vec::with_capacity(queries.len());
    for q in queries {
        let Some(q) = q.as_object() else {
            return judge(cluster, req).await;
        };
        let Some(index) = q.get("indexUid").and_then(Value::as_str) else {
            return judge(cluster, req).await;
        };
        let settings = merge_settings(cluster, services, index).await;
        match prepare(q, &settings) {
            Some(p) => prepared.push(p),
            None => return judge(cluster, req).await,
        }
    }
    let body_for = |t: &Target| {
        let qs: Vec<Value> = prepared
            .iter()
            .map(|p| Value::Object(for_target(&p.shard_body, t)))
            .collect();
        let mut b = body.clone();
        b.insert("queries".into(), Value::Array(qs));
        serde_json::to_vec(&b).unwrap_or_default()
    };
    let answers = match gather(cluster, req, "/multi-search", &body_for).await {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    let merge_started = Instant::now();
    let merged = cpu_bound(|| -> Result<Vec<u8>, crate::merge::MergeError> {
        let ranges: Vec<Vec<(usize, usize)>> =
            answers.iter().map(|a| result_ranges(&a.body)).collect();
        let mut out = Vec::from(&b"{\"results\":["[..]);
        for (i, p) in prepared.iter().enumerate() {
            let mut shards = Vec::with_capacity(answers.len());
            for (a, r) in answers.iter().zip(&ranges) {
                let range = r.get(i).ok_or_else(|| {
                    crate::merge::MergeError("a node answered fewer queries".into())
                })?;
                shards.push(ShardAnswer::parse(
                    &a.body[range.0..range.1],
                    p.plan.distinct.as_deref(),
                )?);
            }
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&merge_search(
                &mut shards,
                &p.plan,
                started.elapsed().as_millis() as u64,
            )?);
        }
        out.extend_from_slice(b"]}");
        Ok(out)
    });
    cluster
        .metrics
        .merge_duration
        .observe(merge_started.elapsed().as_secs_f64());
    match merged {
        Ok(body) => Reply::json(200, body),
        Err(e) => Reply::error(&MeiliError::internal(format!(
            "cannot merge shard answers: {}",
            e.0
        ))),
    }
}

/// `POST /indexes/{uid}/facet-search`: counts summed per value, ordered and truncated like
/// one node's answer.
pub async fn facet_search(cluster: &Cluster<'_>, services: &Services, req: &Request<'_>) -> Reply {
    let started = Instant::now();
    let index = req.route.index.clone().unwrap_or_default();
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&req.body) else {
        return judge(cluster, req).await;
    };
    let settings = merge_settings(cluster, services, &index).await;
    let body_for = |t: &Target| serde_json::to_vec(&for_target(&body, t)).unwrap_or_default();
    let path = format!("/indexes/{index}/facet-search");
    let answers = match gather(cluster, req, &path, &body_for).await {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    let parsed: Vec<Value> = answers
        .iter()
        .filter_map(|a| serde_json::from_slice(&a.body).ok())
        .collect();
    let facet = body.get("facetName").and_then(Value::as_str).unwrap_or("");
    Reply::json(
        200,
        crate::merge::facet_search::merge(
            &parsed,
            &settings.facets,
            facet,
            started.elapsed().as_millis() as u64,
        )
        .to_string(),
    )
}
