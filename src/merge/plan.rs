//! The client's search request turned into what the shards are asked and what the merge
//! needs to know: offset 0 and `offset + limit` hits (or page 1 and
//! `page * hitsPerPage`), ranking scores and details always, and the fields distinct needs.

use serde_json::{Map, Value};

use super::facets::FacetSettings;
use super::search::{HitPlan, SearchPlan};

/// Index settings the merge needs.
#[derive(Debug, Clone)]
pub struct MergeSettings {
    pub max_total_hits: usize,
    pub facets: FacetSettings,
    pub distinct: Option<String>,
    /// The index's primary key, when known (federated merges tell documents apart by it).
    pub primary_key: Option<String>,
}

impl MergeSettings {
    /// From a node's `GET /indexes/{uid}/settings` answer.
    pub fn from_settings(s: &Value) -> MergeSettings {
        MergeSettings {
            max_total_hits: s["pagination"]["maxTotalHits"].as_u64().unwrap_or(1000) as usize,
            facets: FacetSettings::from_settings(&s["faceting"]),
            distinct: s["distinctAttribute"].as_str().map(str::to_string),
            primary_key: None,
        }
    }
}

/// The merge plan of one query and the body each shard gets.
pub struct Prepared {
    pub plan: SearchPlan,
    pub shard_body: Map<String, Value>,
}

/// An optional count (`page`, `hitsPerPage`: `null` means absent, as a node reads it).
fn as_usize(v: Option<&Value>, default: usize) -> Option<usize> {
    match v {
        None | Some(Value::Null) => Some(default),
        Some(v) => v.as_u64().map(|n| n as usize),
    }
}

/// A count with a default (`offset`, `limit`): a node refuses `null` and other types.
fn count(v: Option<&Value>, default: usize) -> Option<usize> {
    match v {
        None => Some(default),
        Some(v) => v.as_u64().map(|n| n as usize),
    }
}

/// A flag with a default (`showRankingScore` ...): a node refuses `null` and other types.
fn flag(v: Option<&Value>) -> Option<bool> {
    match v {
        None => Some(false),
        Some(v) => v.as_bool(),
    }
}

/// Rewrites one query for the shards; `None` if its parameters are not what the merge can
/// read (the nodes then judge them).
pub fn prepare(query: &Map<String, Value>, settings: &MergeSettings) -> Option<Prepared> {
    let page_mode = query.get("page").is_some_and(|v| !v.is_null())
        || query.get("hitsPerPage").is_some_and(|v| !v.is_null());
    let offset = count(query.get("offset"), 0)?;
    let limit = count(query.get("limit"), 20)?;
    let show_ranking_score = flag(query.get("showRankingScore"))?;
    let show_ranking_score_details = flag(query.get("showRankingScoreDetails"))?;
    let distinct = match query.get("distinct") {
        Some(Value::String(d)) => Some(d.clone()),
        None | Some(Value::Null) => settings.distinct.clone(),
        Some(_) => return None,
    };
    let mut shard_body = query.clone();
    let page = if page_mode {
        let page = as_usize(query.get("page"), 1)?;
        let per_page = as_usize(query.get("hitsPerPage"), 20)?;
        shard_body.insert("page".into(), Value::from(1));
        shard_body.insert(
            "hitsPerPage".into(),
            Value::from(page.max(1).saturating_mul(per_page)),
        );
        Some((page, per_page))
    } else {
        shard_body.insert("offset".into(), Value::from(0));
        shard_body.insert(
            "limit".into(),
            Value::from(
                offset
                    .saturating_add(limit)
                    .min(settings.max_total_hits.max(limit)),
            ),
        );
        None
    };
    shard_body.insert("showRankingScore".into(), Value::Bool(true));
    shard_body.insert("showRankingScoreDetails".into(), Value::Bool(true));
    let mut strip = Vec::new();
    if let (Some(d), Some(Value::Array(fields))) =
        (&distinct, shard_body.get_mut("attributesToRetrieve"))
    {
        let retrieved = fields.iter().any(|f| f == "*" || f == d.as_str());
        if !retrieved {
            fields.push(Value::from(d.clone()));
            strip.push(d.clone());
        }
    }
    Some(Prepared {
        plan: SearchPlan {
            offset,
            limit,
            page,
            hits: HitPlan {
                show_ranking_score,
                show_ranking_score_details,
                strip,
            },
            distinct,
            max_total_hits: settings.max_total_hits,
            facets: settings.facets.clone(),
        },
        shard_body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn prepared(q: Value) -> Option<Prepared> {
        prepare(
            q.as_object().unwrap(),
            &MergeSettings::from_settings(&Value::Null),
        )
    }

    #[test]
    fn values_a_node_refuses_are_left_to_a_node() {
        for q in [
            json!({"limit": null}),
            json!({"limit": "5"}),
            json!({"offset": null}),
            json!({"offset": -1}),
            json!({"showRankingScore": null}),
            json!({"showRankingScore": "yes"}),
            json!({"showRankingScoreDetails": 1}),
            json!({"distinct": 3}),
        ] {
            assert!(prepared(q.clone()).is_none(), "{q}");
        }
        // `page` and `hitsPerPage` are optional: `null` means absent, as on a node.
        let p = prepared(json!({"page": null, "hitsPerPage": 4})).unwrap();
        assert_eq!(p.plan.page, Some((1, 4)));
        let p = prepared(json!({"limit": 3, "showRankingScore": true})).unwrap();
        assert_eq!((p.plan.limit, p.plan.hits.show_ranking_score), (3, true));
    }
}
