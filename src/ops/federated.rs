//! Federated multi-search (`federation` set): every query searched over the shards and merged
//! like a plain search, then the queries merged as Meilisearch's federated search does
//! (`search/federated/perform.rs`): weighted scores, ties to the earlier query, `distinct`,
//! one window, facets by index or merged.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use serde_json::{Map, Value};

use super::placement::Target;
use super::search::{for_target, gather, judge, merge_settings, result_ranges};
use super::{Request, Services};
use crate::cluster::Cluster;
use crate::error::MeiliError;
use crate::merge::facets::{merge_distribution, merge_stats, FacetSettings};
use crate::merge::plan::prepare;
use crate::merge::score::{compare_weighted, weighted, Component};
use crate::merge::search::{merge_order, ShardAnswer};
use crate::merge::MergeError;
use crate::respond::Reply;

struct Candidate {
    query: usize,
    answer: usize,
    hit: usize,
    values: Vec<Component>,
    global: f64,
}

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
    let (skip, take) = match (
        federation.get("page").and_then(Value::as_u64),
        federation.get("hitsPerPage").and_then(Value::as_u64),
    ) {
        (None, None) => (
            federation
                .get("offset")
                .and_then(Value::as_u64)
                .unwrap_or(0) as usize,
            federation
                .get("limit")
                .and_then(Value::as_u64)
                .unwrap_or(20) as usize,
        ),
        (None, Some(h)) => (0, h as usize),
        (Some(0), _) => (0, 0),
        (Some(p), h) => {
            let h = h.unwrap_or(20) as usize;
            ((p as usize - 1) * h, h)
        }
    };
    let facets_by_index = federation
        .get("facetsByIndex")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut prepared = Vec::new();
    let mut weights = Vec::new();
    let mut indexes = Vec::new();
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
        match prepare(&plain, &settings) {
            Some(p) => prepared.push(p),
            None => return judge(cluster, req).await,
        }
        weights.push(weight);
        indexes.push(index);
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
    let out = super::cpu_bound(|| -> Result<Vec<u8>, MergeError> {
        let ranges: Vec<Vec<(usize, usize)>> =
            answers.iter().map(|a| result_ranges(&a.body)).collect();
        // Per query: its shard answers and their merged order.
        let mut per_query: Vec<Vec<ShardAnswer<'_>>> = Vec::new();
        let mut orders = Vec::new();
        let mut hit_number = 0u64;
        for (i, p) in prepared.iter().enumerate() {
            let mut shards = Vec::new();
            for (a, r) in answers.iter().zip(&ranges) {
                let range = r
                    .get(i)
                    .ok_or_else(|| MergeError("a node answered fewer queries".into()))?;
                shards.push(ShardAnswer::parse(
                    &a.body[range.0..range.1],
                    federation_distinct(&federation).or(p.plan.distinct.as_deref()),
                )?);
            }
            // Federated distinct may drop hits anywhere: then every hit is read.
            let needed = if federation_distinct(&federation).is_some() {
                usize::MAX
            } else {
                p.plan.needed()
            };
            let (order, dropped) = merge_order(&mut shards, p.plan.distinct.is_some(), needed)?;
            hit_number += shards
                .iter()
                .map(|s| s.number_or_zero("estimatedTotalHits"))
                .sum::<u64>()
                .saturating_sub(dropped as u64);
            orders.push(order);
            per_query.push(shards);
        }
        // Across queries: Meilisearch's weighted comparison, ties to the earlier query.
        let mut cursors = vec![0usize; orders.len()];
        let mut merged: Vec<Candidate> = Vec::new();
        let mut seen_distinct: HashSet<String> = HashSet::new();
        let fed_distinct = federation_distinct(&federation).is_some();
        loop {
            let mut best: Option<Candidate> = None;
            for q in 0..orders.len() {
                let Some(&(a, h)) = orders[q].get(cursors[q]) else {
                    continue;
                };
                let hit = &per_query[q][a].hits[h];
                let cand = Candidate {
                    query: q,
                    answer: a,
                    hit: h,
                    values: weighted(&hit.components, hit.score, weights[q]),
                    global: hit.score * weights[q],
                };
                best = match best {
                    None => Some(cand),
                    Some(b) => {
                        if compare_weighted(&cand.values, cand.global, &b.values, b.global)
                            == std::cmp::Ordering::Greater
                        {
                            Some(cand)
                        } else {
                            Some(b)
                        }
                    }
                };
            }
            let Some(c) = best else { break };
            cursors[c.query] += 1;
            if fed_distinct {
                if let Some(values) = &per_query[c.query][c.answer].hits[c.hit].distinct {
                    if values.iter().any(|v| seen_distinct.contains(v)) {
                        hit_number = hit_number.saturating_sub(1);
                        continue;
                    }
                    seen_distinct.extend(values.iter().cloned());
                }
            }
            merged.push(c);
        }
        let mut out = Vec::from(&b"{\"hits\":["[..]);
        for (n, c) in merged.iter().skip(skip).take(take).enumerate() {
            if n > 0 {
                out.push(b',');
            }
            let shard = &per_query[c.query][c.answer];
            let mut hit = Vec::new();
            prepared[c.query]
                .plan
                .hits
                .write_hit(shard.buf, shard.hits[c.hit].range, &mut hit);
            let federation = format!(
                "\"_federation\":{{\"indexUid\":{},\"queriesPosition\":{},\"weightedRankingScore\":{}}}",
                Value::from(indexes[c.query].clone()),
                c.query,
                Value::from(c.global)
            );
            out.extend_from_slice(&with_federation(&hit, &federation));
        }
        out.extend_from_slice(b"],");
        let slowest = per_query
            .iter()
            .flatten()
            .map(|s| s.number_or_zero("processingTimeMs"))
            .max()
            .unwrap_or(0);
        out.extend_from_slice(
            format!(
                "\"processingTimeMs\":{},",
                slowest + started.elapsed().as_millis() as u64
            )
            .as_bytes(),
        );
        match (
            federation.get("page").and_then(Value::as_u64),
            federation.get("hitsPerPage").and_then(Value::as_u64),
        ) {
            (None, None) => out.extend_from_slice(
                format!("\"limit\":{take},\"offset\":{skip},\"estimatedTotalHits\":{hit_number}")
                    .as_bytes(),
            ),
            (page, per_page) => {
                let page = page.unwrap_or(1);
                let per_page = per_page.unwrap_or(20);
                let pages = if per_page == 0 {
                    0
                } else {
                    hit_number.div_ceil(per_page)
                };
                out.extend_from_slice(format!("\"hitsPerPage\":{per_page},\"page\":{page},\"totalPages\":{pages},\"totalHits\":{hit_number}").as_bytes());
            }
        }
        // Facets, merged per index, then across indexes on request.
        let mut by_index: BTreeMap<String, Value> = BTreeMap::new();
        for (index, settings) in &settings_by_index {
            if !facets_by_index.contains_key(index) {
                continue;
            }
            let dists: Vec<Map<String, Value>> = per_query
                .iter()
                .zip(&indexes)
                .filter(|(_, i)| *i == index)
                .flat_map(|(shards, _)| shards.iter().filter_map(|s| s.object("facetDistribution")))
                .collect();
            let stats: Vec<Map<String, Value>> = per_query
                .iter()
                .zip(&indexes)
                .filter(|(_, i)| *i == index)
                .flat_map(|(shards, _)| shards.iter().filter_map(|s| s.object("facetStats")))
                .collect();
            let mut dist =
                merge_distribution(&dists.iter().collect::<Vec<_>>(), settings, hit_number);
            dist.shift_remove(crate::shard_tag::FIELD);
            by_index.insert(
                index.clone(),
                serde_json::json!({"distribution": dist, "stats": merge_stats(&stats.iter().collect::<Vec<_>>())}),
            );
        }
        if let Some(merge) = federation.get("mergeFacets").filter(|m| !m.is_null()) {
            let max = merge
                .get("maxValuesPerFacet")
                .and_then(Value::as_u64)
                .unwrap_or(100) as usize;
            let dists: Vec<Map<String, Value>> = by_index
                .values()
                .filter_map(|v| v["distribution"].as_object().cloned())
                .collect();
            let stats: Vec<Map<String, Value>> = by_index
                .values()
                .filter_map(|v| v["stats"].as_object().cloned())
                .collect();
            let settings = FacetSettings {
                max_values: max,
                ..FacetSettings::default()
            };
            out.extend_from_slice(b",\"facetDistribution\":");
            out.extend_from_slice(
                &serde_json::to_vec(&merge_distribution(
                    &dists.iter().collect::<Vec<_>>(),
                    &settings,
                    hit_number,
                ))
                .unwrap_or_default(),
            );
            out.extend_from_slice(b",\"facetStats\":");
            out.extend_from_slice(
                &serde_json::to_vec(&merge_stats(&stats.iter().collect::<Vec<_>>()))
                    .unwrap_or_default(),
            );
        } else if !by_index.is_empty() {
            out.extend_from_slice(b",\"facetsByIndex\":");
            out.extend_from_slice(&serde_json::to_vec(&by_index).unwrap_or_default());
        }
        out.extend_from_slice(format!(",\"requestUid\":\"{}\"}}", uuid::Uuid::now_v7()).as_bytes());
        Ok(out)
    });
    match out {
        Ok(body) => Reply::json(200, body),
        Err(e) => Reply::error(&MeiliError::internal(format!(
            "cannot merge shard answers: {}",
            e.0
        ))),
    }
}

/// Inserts `_federation` where a node puts it: after the document's fields, before
/// `_formatted`, `_matchesPosition` and the ranking scores.
fn with_federation(hit: &[u8], member: &str) -> Vec<u8> {
    const AFTER: &[&[u8]] = &[
        b"_formatted",
        b"_matchesPosition",
        b"_rankingScore",
        b"_rankingScoreDetails",
    ];
    let members = crate::merge::raw::members(hit, 0);
    let at = members
        .iter()
        .find(|m| AFTER.contains(&&hit[m.key.0..m.key.1]));
    let mut out = Vec::with_capacity(hit.len() + member.len() + 2);
    match at {
        Some(m) => {
            out.extend_from_slice(&hit[..m.start]);
            out.extend_from_slice(member.as_bytes());
            out.push(b',');
            out.extend_from_slice(&hit[m.start..]);
        }
        None => {
            out.extend_from_slice(&hit[..hit.len() - 1]);
            if !members.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(member.as_bytes());
            out.push(b'}');
        }
    }
    out
}

fn federation_distinct(federation: &Map<String, Value>) -> Option<&str> {
    federation.get("distinct").and_then(Value::as_str)
}
