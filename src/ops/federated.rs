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
use crate::merge::facets::FacetSettings;
use crate::merge::plan::prepare;
use crate::merge::{merge_federated, FederatedPlan, FederatedQuery};
use crate::respond::Reply;

pub async fn federated(
    cluster: &Cluster<'_>,
    services: &Services,
    req: &Request<'_>,
    body: Map<String, Value>,
) -> Reply {
    let started = Instant::now();
    let federation = body
        .get("federation")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let Some(Value::Array(queries)) = body.get("queries") else {
        return judge(cluster, req).await;
    };
    // A node checks the request as a whole: federation rules have their own errors.
    match cluster.send_any(&req.forward()).await {
        Ok((_, resp)) if resp.status != 200 => return super::relay(&resp),
        Err(e) => return super::unreachable(&e.to_string()),
        _ => {}
    }
    let (skip, take) = FederatedPlan::window(&federation);
    let facets_by_index = federation
        .get("facetsByIndex")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut prepared = Vec::new();
    let mut queries_plan = Vec::new();
    let mut settings_by_index: BTreeMap<String, FacetSettings> = BTreeMap::new();
    for q in queries {
        let Some(q) = q.as_object() else {
            return judge(cluster, req).await;
        };
        let index = q
            .get("indexUid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let weight = q
            .get("federationOptions")
            .and_then(|o| o.get("weight"))
            .and_then(Value::as_f64)
            .unwrap_or(1.0);
        let mut plain = q.clone();
        plain.remove("federationOptions");
        plain.insert("limit".into(), Value::from(skip + take));
        plain.insert("offset".into(), Value::from(0));
        if let Some(f) = facets_by_index.get(&index).filter(|f| !f.is_null()) {
            plain.insert("facets".into(), f.clone());
        }
        let settings = merge_settings(cluster, services, &index).await;
        settings_by_index.insert(index.clone(), settings.facets.clone());
        let Some(p) = prepare(&plain, &settings) else {
            return judge(cluster, req).await;
        };
        queries_plan.push(FederatedQuery {
            index,
            weight,
            plan: p.plan.clone(),
        });
        prepared.push(p);
    }
    let body_for = |t: &Target| {
        let qs: Vec<Value> = prepared
            .iter()
            .map(|p| Value::Object(for_target(&p.shard_body, t)))
            .collect();
        serde_json::to_vec(&serde_json::json!({"queries": qs})).unwrap_or_default()
    };
    let answers = match gather(cluster, req, "/multi-search", &body_for).await {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    let plan = FederatedPlan {
        federation,
        queries: queries_plan,
        facets_by_index,
        facet_settings: settings_by_index,
    };
    merged(cluster, &answers, |bodies| {
        merge_federated(bodies, &plan, started.elapsed().as_millis() as u64)
    })
}
