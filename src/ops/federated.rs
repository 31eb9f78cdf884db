//! Federated multi-search (`federation` set): a node judges the request, every query is asked
//! of the shards for the whole federated window, and the answers are merged by
//! [`crate::merge::federated`].

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{Map, Value};

use super::search::{for_target, gather, judge, merge_settings, merged};
use super::{Request, Services};
use crate::attempts::Target;
use crate::cluster::Cluster;
use crate::merge::{federated_indexes, merge_federated, prepare_federated};
use crate::respond::Reply;

pub async fn federated(
    cluster: &Cluster<'_>,
    services: &Services,
    req: &Request<'_>,
    body: Map<String, Value>,
) -> Reply {
    let started = Instant::now();
    // A node checks the request as a whole: federation rules have their own errors.
    match cluster.send_any(&req.forward()).await {
        Ok((_, resp)) if resp.status != 200 => return super::relay(&resp),
        Err(e) => return super::unreachable(&e.to_string()),
        _ => {}
    }
    let Some(mut indexes) = federated_indexes(&body) else {
        return judge(cluster, req).await;
    };
    indexes.sort();
    indexes.dedup();
    let mut settings = BTreeMap::new();
    for index in indexes {
        let mut s = merge_settings(cluster, services, &index).await;
        if let Ok(Some(info)) = services.indexes.lookup(cluster, &index).await {
            s.primary_key = info.primary_key;
        }
        settings.insert(index, s);
    }
    let Some(prepared) = prepare_federated(&body, &settings) else {
        return judge(cluster, req).await;
    };
    // Every query's hits, from each shard; and, in a request of its own, each shard's
    // federated totals and facets (a node counts a document several queries find once).
    let body_for = |t: &Target| {
        let qs: Vec<Value> = prepared
            .queries
            .iter()
            .map(|p| Value::Object(for_target(&p.shard_body, t)))
            .collect();
        serde_json::to_vec(&serde_json::json!({"queries": qs})).unwrap_or_default()
    };
    let totals_for = |t: &Target| {
        serde_json::to_vec(&prepared.totals_body(|q| for_target(q, t))).unwrap_or_default()
    };
    let (answers, totals) = tokio::join!(
        gather(cluster, req, "/multi-search", &body_for),
        gather(cluster, req, "/multi-search", &totals_for)
    );
    let (answers, totals) = match (answers, totals) {
        (Ok(a), Ok(t)) => (a, t),
        (Err(reply), _) | (_, Err(reply)) => return reply,
    };
    let totals: Vec<&[u8]> = totals.iter().map(|a| &a.body[..]).collect();
    merged(cluster, &answers, |bodies| {
        let ms = started.elapsed().as_millis() as u64;
        merge_federated(bodies, Some(&totals), &prepared.plan, ms)
    })
}
