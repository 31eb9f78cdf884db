//! Scatter-gather reads: `/indexes/{uid}/search` (GET and POST), `/multi-search` (plain and
//! federated) and `/indexes/{uid}/facet-search`. One owner per shard is asked for the whole
//! window the client wants (with ranking details), and the answers merged by
//! [`crate::merge`].

use std::time::Instant;

use http::Method;
use serde_json::{Map, Value};

pub(super) use super::gather::gather;
use super::gather::MAX_FAILOVERS;
use super::{answers_len, cpu_bound, relay, unreachable, Request, Services};
use crate::attempts::{ReadError, Target};
use crate::cluster::Cluster;
use crate::error::MeiliError;
use crate::merge::lone::{multi_without_reserved, without_reserved};
use crate::merge::{
    merge_facet_search, merge_multi, merge_search, prepare, MergeError, MergeSettings, SearchPlan,
    ShardAnswer,
};
use crate::query_string::pairs;
use crate::respond::Reply;
use crate::shard_tag::{and_filter, guard};
use crate::transport::NodeResponse;

/// The settings of `index`, asked of a node with the gateway's key (briefly cached).
pub(super) async fn merge_settings(
    cluster: &Cluster<'_>,
    services: &Services,
    index: &str,
) -> MergeSettings {
    let client = |mut m: MergeSettings| {
        if let Some(v) = services.tasks.client_facet_values(index) {
            m.facets.max_values = v as usize;
        }
        m
    };
    let cache = &services.cache;
    if let Some(s) = services
        .indexes
        .settings(index, |tick| cache.unchanged_since(index, tick))
    {
        return client(MergeSettings::from_settings(&s));
    }
    let tick = cache.tick();
    let req = cluster.own_request(crate::transport::NodeRequest::get(format!(
        "/indexes/{index}/settings"
    )));
    match cluster.send_any(&req).await {
        Ok((_, resp)) if resp.status == 200 => {
            let s: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
            let settings = MergeSettings::from_settings(&s);
            services.indexes.remember_settings(index, s, tick);
            client(settings)
        }
        _ => client(MergeSettings::from_settings(&Value::Null)),
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

/// [`for_target`], serialized; without a shard filter the body is written as it is.
fn target_bytes(body: &Map<String, Value>, target: &Target) -> Vec<u8> {
    let written = match &target.filter {
        None => serde_json::to_vec(body),
        Some(_) => serde_json::to_vec(&for_target(body, target)),
    };
    written.unwrap_or_default()
}

/// `GET`/`POST /indexes/{uid}/search`.
pub async fn search(cluster: &Cluster<'_>, services: &Services, req: &Request<'_>) -> Reply {
    let started = Instant::now();
    let index = req.route.index.clone().unwrap_or_default();
    if lone_allowed(cluster, req) {
        // Facets the nodes keep deeper are cut to the client's `maxValuesPerFacet`.
        let max_values = match may_ask_for_facets(req) {
            true => services.tasks.client_facet_values(&index),
            false => None,
        };
        let max_values = max_values.map(|v| usize::try_from(v).unwrap_or(usize::MAX));
        return lone_read(cluster, req, |answer| without_reserved(answer, max_values)).await;
    }
    let mut query = if req.method == Method::GET {
        get_params_to_body(req.query)
    } else {
        req.json_object()
    };
    let renamed;
    let may_rename = req.method == Method::GET || guard::may_name_a_field(&req.body);
    let req = match query.as_mut().filter(|q| may_rename && guard::uses_tag(q)) {
        Some(q) => {
            guard::rename_in_query(q);
            renamed = req.with_body(serde_json::to_vec(q).unwrap_or_default());
            &renamed
        }
        None => req,
    };
    let settings = merge_settings(cluster, services, &index).await;
    let Some(prepared) = query.as_ref().and_then(|q| prepare(q, &settings)) else {
        return judge(cluster, req).await;
    };
    let path = format!("/indexes/{index}/search");
    // A node asked for every shard answers alone: its hits need no ranking details, so it
    // gets the client's own choice of them (less for it to compute and send, nothing to
    // strip).
    let shards = cluster.topology.shards;
    let someone_holds_all = cluster
        .topology
        .owned_counts()
        .iter()
        .any(|&c| c as u64 == shards as u64);
    let lone_body = query.as_ref().filter(|_| someone_holds_all).map(|q| {
        let mut b = prepared.shard_body.clone();
        for flag in ["showRankingScore", "showRankingScoreDetails"] {
            match q.get(flag) {
                Some(v) => b.insert(flag.into(), v.clone()),
                None => b.remove(flag),
            };
        }
        b
    });
    let body_for = |t: &Target| {
        let body = match &lone_body {
            Some(lone) if t.filter.is_none() && t.shards.len() as u64 == shards as u64 => lone,
            _ => &prepared.shard_body,
        };
        target_bytes(body, t)
    };
    let answers = match gather(cluster, req, &path, &body_for).await {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    let plan = &prepared.plan;
    merged(cluster, &answers, |bodies| {
        let alone = bodies.len() == 1;
        let mut shards = bodies
            .iter()
            .map(|b| {
                let answer = ShardAnswer::parse(b, plan.distinct.as_deref())?;
                Ok(if alone { answer.alone() } else { answer })
            })
            .collect::<Result<Vec<_>, MergeError>>()?;
        merge_search(&mut shards, plan, started.elapsed().as_millis() as u64)
    })
}

/// Whether a read may take the lone path: every node holds every shard, so one node gets the
/// client's own request and its answer goes back as it is, less the gateway's fields. Not for
/// a request that may name a gateway field (renamed first).
fn lone_allowed(cluster: &Cluster<'_>, req: &Request<'_>) -> bool {
    let plain = match *req.method {
        Method::POST => !guard::may_name_a_field(&req.body),
        Method::GET => !guard::query_may_name_a_field(req.query),
        _ => false,
    };
    plain && every_node_holds_every_shard(cluster)
}

/// Whether the nodes keep as many facet values as the client of `index` asked for: where
/// they keep more, a facet answer must be cut to the client's `maxValuesPerFacet`.
fn facets_whole(services: &Services, index: &str) -> bool {
    services.tasks.client_facet_values(index).is_none()
}

/// Whether a search may ask for facets (conservatively: the word appears as a key could,
/// or a percent escape could spell it; a cut where none was asked changes nothing).
fn may_ask_for_facets(req: &Request<'_>) -> bool {
    match *req.method {
        Method::GET => req.query.contains("facets") || req.query.contains('%'),
        // No `\u` escape here (see `lone_allowed`): a `facets` key is spelled as is.
        _ => memchr::memmem::find(&req.body, b"\"facets\"").is_some(),
    }
}

/// Whether any node's answer covers every shard, whichever node is asked.
fn every_node_holds_every_shard(cluster: &Cluster<'_>) -> bool {
    let shards = cluster.topology.shards as u64;
    cluster
        .topology
        .owned_counts()
        .iter()
        .all(|&c| c as u64 == shards)
}

/// The client's own request to one node (another if it fails, as any read), its answer
/// through `strip` (which takes the gateway's fields out).
async fn lone_read(
    cluster: &Cluster<'_>,
    req: &Request<'_>,
    strip: impl FnOnce(&[u8]) -> Result<Vec<u8>, MergeError>,
) -> Reply {
    let answer = cluster
        .read_one(&req.forward(), MAX_FAILOVERS, super::gather::judge)
        .await;
    match answer {
        Ok((_, answer)) => merged(cluster, &[answer], |bodies| match bodies {
            [one] => strip(one),
            _ => Err(MergeError("one node's answer was expected".into())),
        }),
        Err(ReadError::Stopped(_, resp)) => relay(&resp),
        Err(ReadError::Unavailable { reasons, .. }) => {
            let all: Vec<u32> = (0..cluster.topology.shards).collect();
            Reply::error(&MeiliError::shards_unavailable(&all, &reasons))
        }
    }
}

/// Runs a merge over the nodes' answers (off the async worker when large), records its
/// time, and turns its result into the reply: the one place a merge becomes a response.
pub(super) fn merged(
    cluster: &Cluster<'_>,
    answers: &[NodeResponse],
    merge: impl FnOnce(&[&[u8]]) -> Result<Vec<u8>, MergeError>,
) -> Reply {
    let started = Instant::now();
    let bodies: Vec<&[u8]> = answers.iter().map(|a| &a.body[..]).collect();
    let result = cpu_bound(answers_len(answers), || merge(&bodies));
    cluster
        .metrics
        .merge_duration
        .observe(started.elapsed().as_secs_f64());
    match result {
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

/// `POST /multi-search`: every query merged like a search; all the queries a node answers
/// travel in one request. Federated requests are merged by [`federated`].
pub async fn multi_search(cluster: &Cluster<'_>, services: &Services, req: &Request<'_>) -> Reply {
    let started = Instant::now();
    let Some(mut body) = req.json_object() else {
        return judge(cluster, req).await;
    };
    let renamed;
    let req = if rename_in_multi_search(&mut body) {
        renamed = req.with_body(serde_json::to_vec(&body).unwrap_or_default());
        &renamed
    } else {
        req
    };
    if body.get("federation").is_some_and(|f| !f.is_null()) {
        return super::federated::federated(cluster, services, req, body).await;
    }
    let Some(Value::Array(queries)) = body.get("queries") else {
        return judge(cluster, req).await;
    };
    // As a search: one node answers the client's request (its gateway fields renamed, if
    // any) when every node holds every shard.
    if every_node_holds_every_shard(cluster) {
        // Each query's facets cut to its index's `maxValuesPerFacet` where the nodes keep more.
        let max_values: Vec<Option<usize>> = queries
            .iter()
            .map(|q| {
                let index = q.get("indexUid").and_then(Value::as_str)?;
                if q.get("facets").is_none_or(Value::is_null) {
                    return None;
                }
                let v = services.tasks.client_facet_values(index)?;
                Some(usize::try_from(v).unwrap_or(usize::MAX))
            })
            .collect();
        return lone_read(cluster, req, |answer| {
            multi_without_reserved(answer, &max_values)
        })
        .await;
    }
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
    let plans: Vec<&SearchPlan> = prepared.iter().map(|p| &p.plan).collect();
    merged(cluster, &answers, |bodies| {
        merge_multi(bodies, &plans, started.elapsed().as_millis() as u64)
    })
}

/// Renames the shard tag where the queries, or `federation.facetsByIndex`, use it as an
/// attribute; whether any did.
fn rename_in_multi_search(body: &mut Map<String, Value>) -> bool {
    let mut renamed = false;
    if let Some(Value::Array(queries)) = body.get_mut("queries") {
        for q in queries.iter_mut().filter_map(Value::as_object_mut) {
            renamed |= guard::rename_in_query(q);
        }
    }
    let by_index = body
        .get_mut("federation")
        .and_then(|f| f.get_mut("facetsByIndex"))
        .and_then(Value::as_object_mut);
    for facets in by_index.into_iter().flat_map(|m| m.values_mut()) {
        let mut holder = Map::new();
        holder.insert("facets".into(), facets.take());
        renamed |= guard::rename_in_query(&mut holder);
        *facets = holder.remove("facets").unwrap_or(Value::Null);
    }
    renamed
}

/// `POST /indexes/{uid}/facet-search`: counts summed per value, ordered and truncated like
/// one node's answer.
pub async fn facet_search(cluster: &Cluster<'_>, services: &Services, req: &Request<'_>) -> Reply {
    let started = Instant::now();
    let index = req.route.index.clone().unwrap_or_default();
    // A facet search's answer names no document field: the lone node's is the answer.
    if lone_allowed(cluster, req) && facets_whole(services, &index) {
        return lone_read(cluster, req, |answer| Ok(answer.to_vec())).await;
    }
    let Some(mut body) = req.json_object() else {
        return judge(cluster, req).await;
    };
    guard::rename_in_query(&mut body);
    let settings = merge_settings(cluster, services, &index).await;
    let body_for = |t: &Target| target_bytes(&body, t);
    let path = format!("/indexes/{index}/facet-search");
    let answers = match gather(cluster, req, &path, &body_for).await {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    let facet = body.get("facetName").and_then(Value::as_str).unwrap_or("");
    merged(cluster, &answers, |bodies| {
        let parsed: Vec<Value> = bodies
            .iter()
            .filter_map(|b| serde_json::from_slice(b).ok())
            .collect();
        let ms = started.elapsed().as_millis() as u64;
        let answer = merge_facet_search(&parsed, &settings.facets, facet, ms);
        Ok(answer.to_string().into_bytes())
    })
}

/// A search of an alias with several targets: the federated multi-search over them, with
/// the window and facets merged, answered with the search's `query`.
pub async fn alias_search(
    cluster: &Cluster<'_>,
    services: &Services,
    req: &Request<'_>,
    targets: &[String],
) -> Reply {
    let query = if req.method == Method::GET {
        get_params_to_body(req.query)
    } else {
        req.json_object()
    };
    // Unreadable parameters: the first target's node judges them, as it would the alias's.
    let Some(query) = query else {
        let path = crate::aliases::resolve::with_index(req.path, &targets[0]);
        let first = Request {
            path: &path,
            ..req.with_body(req.body.to_vec())
        };
        return judge(cluster, &first).await;
    };
    let body = crate::aliases::resolve::federated_body(&query, targets);
    let mut headers = req.headers.clone();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    let route = match crate::routes::classify(&Method::POST, "/multi-search") {
        Ok(route) => route,
        Err(_) => return Reply::error(&MeiliError::internal("no multi-search route")),
    };
    let federated_req = Request {
        method: &Method::POST,
        path: "/multi-search",
        query: "",
        headers: &headers,
        body: serde_json::to_vec(&body).unwrap_or_default().into(),
        route: &route,
        upstream_headers: req.upstream_headers,
        received_at: req.received_at.clone(),
    };
    let reply = super::federated::federated(cluster, services, &federated_req, body).await;
    if reply.status != 200 {
        return reply;
    }
    let q = query.get("q").cloned().unwrap_or(Value::from(""));
    Reply {
        body: with_query(&reply.body, &q).into(),
        ..reply
    }
}

/// A JSON object answer with `"query"` first, as a search answer has it.
fn with_query(answer: &[u8], q: &Value) -> Vec<u8> {
    let Some(rest) = answer.strip_prefix(b"{") else {
        return answer.to_vec();
    };
    let mut out = Vec::with_capacity(answer.len() + 32);
    out.extend_from_slice(b"{\"query\":");
    out.extend_from_slice(q.to_string().as_bytes());
    if rest.first() != Some(&b'}') {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    out
}
