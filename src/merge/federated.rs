//! Federated multi-search merged as Meilisearch's federated search does
//! (`search/federated/perform.rs`): every query's shard answers merged like a plain search,
//! then the queries merged by weighted score (ties to the earlier query), `distinct` across
//! them, one window, facets by index or merged.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value};

use super::facets::{merge_distribution, merge_stats, FacetSettings};
use super::multi::query_answers;
use super::plan::{prepare, MergeSettings, Prepared};
use super::raw::result_ranges;
use super::score::{compare_weighted, weighted, Component};
use super::search::{merge_order, MergeError, SearchPlan, ShardAnswer};

/// One query of a federated request.
#[derive(Debug, Clone)]
pub struct FederatedQuery {
    pub index: String,
    pub weight: f64,
    pub plan: SearchPlan,
    /// The index's primary key: a document found by several queries of one index is kept
    /// once, as a node keeps it (by its internal id).
    pub primary_key: Option<String>,
}

/// What the merge must know of a federated request.
#[derive(Debug, Clone)]
pub struct FederatedPlan {
    /// The client's `federation` object.
    pub federation: Map<String, Value>,
    pub queries: Vec<FederatedQuery>,
    /// `federation.facetsByIndex`.
    pub facets_by_index: Map<String, Value>,
    /// The faceting settings of each index queried.
    pub facet_settings: BTreeMap<String, FacetSettings>,
}

impl FederatedPlan {
    /// The merged list's window: hits skipped, hits taken.
    pub fn window(federation: &Map<String, Value>) -> (usize, usize) {
        match (
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
        }
    }
}

/// A federated request prepared: the merge's plan, and each query as every node is asked
/// it (before shard filters), in the plain multi-search body `{"queries": [...]}`.
pub struct PreparedFederated {
    pub plan: FederatedPlan,
    pub queries: Vec<Prepared>,
    /// The client's queries as a node's federated request takes them, for the totals.
    pub federated_queries: Vec<Map<String, Value>>,
    /// The `federation` of that request: no hits, the facets by index.
    pub totals_federation: Map<String, Value>,
}

impl PreparedFederated {
    /// The federated request that gives each node's totals and facets for its shards, with
    /// `filtered` adding a query's shard filter. A node counts each index's documents once
    /// however many queries find them (the union of their candidates), and shards hold
    /// disjoint documents: summed, these are the totals and facets of one node.
    pub fn totals_body(
        &self,
        filtered: impl Fn(&Map<String, Value>) -> Map<String, Value>,
    ) -> Value {
        let queries: Vec<Value> = self
            .federated_queries
            .iter()
            .map(|q| Value::Object(filtered(q)))
            .collect();
        serde_json::json!({"federation": self.totals_federation, "queries": queries})
    }
}

/// The index each query of a federated request names, in order (their settings are what
/// [`prepare_federated`] needs); `None` for a request the merge cannot read.
pub fn federated_indexes(body: &Map<String, Value>) -> Option<Vec<String>> {
    let Some(Value::Array(queries)) = body.get("queries") else {
        return None;
    };
    queries
        .iter()
        .map(|q| {
            let q = q.as_object()?;
            Some(
                q.get("indexUid")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

/// Rewrites a federated request for the shards: every query asked for the whole federated
/// window (`offset + limit` hits from 0) with the facets `facetsByIndex` wants of its index.
/// `settings` holds each index's settings; `None` for a request the merge cannot read (a node
/// then judges it).
pub fn prepare_federated(
    body: &Map<String, Value>,
    settings: &BTreeMap<String, MergeSettings>,
) -> Option<PreparedFederated> {
    let federation = body
        .get("federation")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let (skip, take) = FederatedPlan::window(&federation);
    let facets_by_index = federation
        .get("facetsByIndex")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let Some(Value::Array(queries)) = body.get("queries") else {
        return None;
    };
    let mut prepared = Vec::new();
    let mut plans = Vec::new();
    let mut facet_settings = BTreeMap::new();
    for q in queries {
        let q = q.as_object()?;
        let index = q
            .get("indexUid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let weight = q
            .get("federationOptions")
            .and_then(|o| o.get("weight"))
            .and_then(Value::as_f64)
            .unwrap_or(1.0);
        let mut plain = q.clone();
        plain.remove("federationOptions");
        plain.insert("limit".into(), Value::from(skip + take));
        plain.insert("offset".into(), Value::from(0));
        if let Some(f) = facets_by_index.get(index).filter(|f| !f.is_null()) {
            plain.insert("facets".into(), f.clone());
        }
        let index_settings = settings.get(index)?;
        facet_settings.insert(index.to_string(), index_settings.facets.clone());
        let mut p = prepare(&plain, index_settings)?;
        let primary_key = index_settings.primary_key.clone();
        // The primary key must come back to tell documents apart; removed after.
        if let (Some(pk), Some(Value::Array(fields))) =
            (&primary_key, p.shard_body.get_mut("attributesToRetrieve"))
        {
            if !fields.iter().any(|f| f == "*" || f == pk.as_str()) {
                fields.push(Value::from(pk.clone()));
                p.plan.hits.strip.push(pk.clone());
            }
        }
        plans.push(FederatedQuery {
            index: index.to_string(),
            weight,
            plan: p.plan.clone(),
            primary_key,
        });
        prepared.push(p);
    }
    let mut totals_federation = federation.clone();
    for key in ["offset", "limit", "page", "hitsPerPage", "mergeFacets"] {
        totals_federation.remove(key);
    }
    let page_mode = federation.contains_key("page") || federation.contains_key("hitsPerPage");
    if page_mode {
        totals_federation.insert("page".into(), Value::from(1));
        totals_federation.insert("hitsPerPage".into(), Value::from(0));
    } else {
        totals_federation.insert("limit".into(), Value::from(0));
    }
    let federated_queries = queries
        .iter()
        .filter_map(|q| q.as_object().cloned())
        .collect();
    Some(PreparedFederated {
        plan: FederatedPlan {
            federation,
            queries: plans,
            facets_by_index,
            facet_settings,
        },
        queries: prepared,
        federated_queries,
        totals_federation,
    })
}

struct Candidate {
    query: usize,
    answer: usize,
    hit: usize,
    values: Vec<Component>,
    global: f64,
}

/// Merges the nodes' multi-search answers (`answers[n]` holds every query's result, in
/// order) into one federated answer; `totals` are the nodes' answers to
/// [`PreparedFederated::totals_body`], which give the totals and facets when present;
/// `gateway_ms` is added to the slowest node's time.
pub fn merge_federated(
    answers: &[&[u8]],
    totals: Option<&[&[u8]]>,
    plan: &FederatedPlan,
    gateway_ms: u64,
) -> Result<Vec<u8>, MergeError> {
    let page_mode =
        plan.federation.contains_key("page") || plan.federation.contains_key("hitsPerPage");
    let totals: Option<Vec<ShardAnswer<'_>>> = match totals {
        Some(t) => Some(
            t.iter()
                .map(|a| ShardAnswer::parse(a, None))
                .collect::<Result<_, _>>()?,
        ),
        None => None,
    };
    // Documents the merge drops as copies of others: counted once by the nodes' totals.
    let union_known = totals.is_some();
    let federation = &plan.federation;
    let (skip, take) = FederatedPlan::window(federation);

    let ranges: Vec<Vec<(usize, usize)>> = answers.iter().map(|a| result_ranges(a)).collect();
    // Per query: its shard answers and their merged order.
    let mut per_query: Vec<Vec<ShardAnswer<'_>>> = Vec::new();
    let mut orders = Vec::new();
    let (mut summed, mut drops) = (0u64, 0u64);
    let mut hit_number: u64;
    for (i, q) in plan.queries.iter().enumerate() {
        let p = &q.plan;
        let distinct = federation_distinct(federation).or(p.distinct.as_deref());
        let mut shards = query_answers(answers, &ranges, i, distinct)?;
        // Federated distinct may drop hits anywhere: then every hit is read.
        let needed = if federation_distinct(federation).is_some() {
            usize::MAX
        } else {
            p.needed()
        };
        let (order, dropped) = merge_order(&mut shards, p.distinct.is_some(), needed)?;
        summed += shards
            .iter()
            .map(|s| s.number_or_zero("estimatedTotalHits"))
            .sum::<u64>();
        drops += dropped as u64;
        orders.push(order);
        per_query.push(shards);
    }
    // Distinct values repeated across shards are dropped by the merge, never by a node.
    hit_number = match &totals {
        Some(totals) => {
            let key = if page_mode {
                "totalHits"
            } else {
                "estimatedTotalHits"
            };
            totals.iter().map(|t| t.number_or_zero(key)).sum::<u64>()
        }
        None => summed,
    }
    .saturating_sub(drops);
    // Across queries: Meilisearch's weighted comparison, ties to the earlier query.
    let mut cursors = vec![0usize; orders.len()];
    let mut merged: Vec<Candidate> = Vec::new();
    let mut seen_distinct: HashSet<String> = HashSet::new();
    let mut seen_documents: HashSet<(&str, Vec<u8>)> = HashSet::new();
    let fed_distinct = federation_distinct(federation).is_some();
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
                values: weighted(&hit.components, hit.score, plan.queries[q].weight),
                global: hit.score * plan.queries[q].weight,
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
        // A document several queries of one index found is kept once, where it ranks best
        // (a node keeps its first occurrence); it counts once in the total too.
        let query = &plan.queries[c.query];
        if let Some(pk) = &query.primary_key {
            let shard = &per_query[c.query][c.answer];
            let hit = &shard.hits[c.hit];
            if let Some(id) = member_bytes(shard.buf, hit.range.0, pk.as_bytes()) {
                if !seen_documents.insert((query.index.as_str(), id.to_vec())) {
                    if !union_known {
                        hit_number = hit_number.saturating_sub(1);
                    }
                    continue;
                }
            }
        }
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
        plan.queries[c.query]
            .plan
            .hits
            .write_hit(shard.buf, &shard.hits[c.hit], &mut hit);
        let federation = format!(
        "\"_federation\":{{\"indexUid\":{},\"queriesPosition\":{},\"weightedRankingScore\":{}}}",
        Value::from(plan.queries[c.query].index.clone()),
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
    out.extend_from_slice(format!("\"processingTimeMs\":{},", slowest + gateway_ms).as_bytes());
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
    let node_facets: Option<Vec<Map<String, Value>>> = totals
        .as_ref()
        .map(|t| t.iter().filter_map(|n| n.object("facetsByIndex")).collect());
    for (index, settings) in &plan.facet_settings {
        if !plan.facets_by_index.contains_key(index) {
            continue;
        }
        // Each node's facets of the index, over the union of its queries' candidates.
        if let Some(node_facets) = &node_facets {
            let part = |what: &str| -> Vec<Map<String, Value>> {
                node_facets
                    .iter()
                    .filter_map(|f| f.get(index)?.get(what)?.as_object().cloned())
                    .collect()
            };
            let (dists, stats) = (part("distribution"), part("stats"));
            let mut dist =
                merge_distribution(&dists.iter().collect::<Vec<_>>(), settings, hit_number);
            dist.shift_remove(crate::shard_tag::FIELD);
            dist.shift_remove(crate::shard_tag::order::FIELD);
            by_index.insert(
                index.clone(),
                serde_json::json!({"distribution": dist, "stats": merge_stats(&stats.iter().collect::<Vec<_>>())}),
            );
            continue;
        }
        let dists: Vec<Map<String, Value>> = per_query
            .iter()
            .zip(plan.queries.iter().map(|q| &q.index))
            .filter(|(_, i)| *i == index)
            .flat_map(|(shards, _)| shards.iter().filter_map(|s| s.object("facetDistribution")))
            .collect();
        let stats: Vec<Map<String, Value>> = per_query
            .iter()
            .zip(plan.queries.iter().map(|q| &q.index))
            .filter(|(_, i)| *i == index)
            .flat_map(|(shards, _)| shards.iter().filter_map(|s| s.object("facetStats")))
            .collect();
        let mut dist = merge_distribution(&dists.iter().collect::<Vec<_>>(), settings, hit_number);
        dist.shift_remove(crate::shard_tag::FIELD);
        dist.shift_remove(crate::shard_tag::order::FIELD);
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
    out.extend_from_slice(format!(",\"requestUid\":\"{}\"", uuid::Uuid::now_v7()).as_bytes());
    // Asked for: the steps of the slowest node (the nodes search in parallel).
    if federation.get("showPerformanceDetails") == Some(&Value::Bool(true)) {
        let slowest = totals
            .iter()
            .flatten()
            .max_by_key(|t| t.number_or_zero("processingTimeMs"))
            .and_then(|t| t.object("performanceDetails"));
        if let Some(details) = slowest {
            out.extend_from_slice(b",\"performanceDetails\":");
            out.extend_from_slice(&serde_json::to_vec(&details).unwrap_or_default());
        }
    }
    out.push(b'}');
    Ok(out)
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

/// The bytes of a top-level member's value in the object at `start`.
fn member_bytes<'b>(buf: &'b [u8], start: usize, name: &[u8]) -> Option<&'b [u8]> {
    crate::merge::raw::members(buf, start)
        .into_iter()
        .find(|m| &buf[m.key.0..m.key.1] == name)
        .map(|m| &buf[m.value.0..m.value.1])
}

fn federation_distinct(federation: &Map<String, Value>) -> Option<&str> {
    federation.get("distinct").and_then(Value::as_str)
}
