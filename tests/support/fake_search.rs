//! Reads of the test node: search, and documents browsed or fetched (filters, sorts, fields
//! and paging as Meilisearch v1.50 answers them).

use serde_json::{json, Map, Value};

use super::fake_filter::Filter;
use super::fake_meili::*;
use super::fake_node::{error, json_answer, Answer, Index, NodeState};
use super::fake_settings::*;
use super::http::Message;

/// A small search: documents containing `q` (all for an empty query) and matching `filter`
/// (checked as Meilisearch checks it: syntax first, then the index, then filterability),
/// ordered by id through a sort rule in the score details; `limit`/`offset` with
/// `estimatedTotalHits`, or `hitsPerPage`/`page` with exhaustive `totalHits`; no hit beyond
/// the index's `pagination.maxTotalHits`.
pub(super) fn search(state: &mut NodeState, uid: &str, req: &Message) -> Answer {
    if state.search_overloaded {
        return error(
            503,
            "too_many_search_requests",
            "system",
            "Too many search requests running at the same time: 0. Retry after 10s.",
        );
    }
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let filter = match Filter::parse(&body["filter"]) {
        Ok(f) => f,
        Err(message) => return error(400, "invalid_search_filter", "invalid_request", &message),
    };
    let Some(index) = state.indexes.get(uid) else {
        return index_not_found(uid);
    };
    if let Some(f) = &filter {
        if let Some(field) = f.unfilterable(&index.filterable) {
            let message = f.search_not_filterable(uid, field, &index.filterable);
            return error(400, "invalid_search_filter", "invalid_request", &message);
        }
    }
    let sort_fields: Vec<&str> = body["sort"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|r| r.rsplit_once(':').map(|(f, _)| f))
        .filter(|f| !f.starts_with("_geoPoint("))
        .collect();
    if let Some(message) = unsortable(index, &sort_fields) {
        let message = format!("Index `{uid}`: {message}");
        return error(400, "invalid_search_sort", "invalid_request", &message);
    }
    let query = body["q"].as_str().unwrap_or("");
    let q = query.to_lowercase();
    let mut hits: Vec<(&String, &Value)> = index
        .documents
        .iter()
        .filter(|(_, d)| filter.as_ref().is_none_or(|f| f.matches(d)))
        .filter(|(_, d)| q.is_empty() || d.to_string().to_lowercase().contains(&q))
        .collect();
    hits.sort_by(|a, b| a.0.cmp(b.0));
    let total = hits.len();
    let max_total_hits = settings_of(index)["pagination"]["maxTotalHits"]
        .as_u64()
        .unwrap_or(1000) as usize;
    let paged = !body["hitsPerPage"].is_null() || !body["page"].is_null();
    let (skip, take) = if paged {
        let per_page = body["hitsPerPage"].as_u64().unwrap_or(20) as usize;
        let page = body["page"].as_u64().unwrap_or(1) as usize;
        match page {
            0 => (0, 0),
            p => ((p - 1) * per_page, per_page),
        }
    } else {
        (
            body["offset"].as_u64().unwrap_or(0) as usize,
            body["limit"].as_u64().unwrap_or(20) as usize,
        )
    };
    let take = take.min(max_total_hits.saturating_sub(skip));
    let displayed: Option<Vec<Value>> = settings_of(index)["displayedAttributes"]
        .as_array()
        .filter(|d| !d.contains(&json!("*")))
        .cloned();
    let page: Vec<Value> = hits
        .into_iter()
        .skip(skip)
        .take(take)
        .map(|(id, d)| {
            let mut d = d.clone();
            if let (Some(shown), Value::Object(fields)) = (&displayed, &mut d) {
                fields.retain(|k, _| shown.iter().any(|s| s == k));
            }
            if body["showRankingScore"] == true {
                d["_rankingScore"] = json!(1.0);
            }
            if body["showRankingScoreDetails"] == true {
                d["_rankingScoreDetails"] = json!({"id:asc": {"order": 0, "value": id}});
            }
            d
        })
        .collect();
    let request_uid = "01a20000-0000-7000-8000-000000000000";
    if paged {
        let per_page = body["hitsPerPage"].as_u64().unwrap_or(20);
        let total_pages = if per_page == 0 {
            0
        } else {
            (total as u64).div_ceil(per_page)
        };
        json_answer(
            200,
            json!({"hits": page, "query": query, "processingTimeMs": 0, "hitsPerPage": per_page, "page": body["page"].as_u64().unwrap_or(1), "totalPages": total_pages, "totalHits": total, "requestUid": request_uid}),
        )
    } else {
        json_answer(
            200,
            json!({"hits": page, "query": query, "processingTimeMs": 0, "limit": body["limit"].as_u64().unwrap_or(20), "offset": skip, "estimatedTotalHits": total, "requestUid": request_uid}),
        )
    }
}

/// `GET /indexes/{uid}/documents`: `offset`, `limit`, `fields`, `ids` and `filter` as query
/// parameters; every field of the documents (`displayedAttributes` does not apply).
pub(super) fn browse(state: &NodeState, uid: &str, req: &Message) -> Answer {
    const KNOWN: [&str; 8] = [
        "offset",
        "limit",
        "fields",
        "retrieveVectors",
        "ids",
        "filter",
        "sort",
        "useNetwork",
    ];
    let mut body = Map::new();
    for (k, v) in params(req) {
        match k.as_str() {
            "offset" | "limit" => {
                let code = format!("invalid_document_{k}");
                match positive_integer(&k, &v, &code) {
                    Ok(n) => body.insert(k, json!(n)),
                    Err(answer) => return answer,
                };
            }
            "fields" | "ids" => {
                body.insert(k, json!(v.split(',').map(str::trim).collect::<Vec<_>>()));
            }
            "filter" => {
                body.insert(k, json!(v));
            }
            k if KNOWN.contains(&k) => {}
            _ => return unknown_param(&k, &KNOWN),
        }
    }
    fetch_documents(state, uid, &Value::Object(body))
}

/// `POST /indexes/{uid}/documents/fetch`: every field of the documents matching `filter`
/// (`displayedAttributes` does not apply), `total` counting all matches.
pub(super) fn fetch(state: &NodeState, uid: &str, req: &Message) -> Answer {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    fetch_documents(state, uid, &body)
}

/// Documents by `filter`, `ids`, `offset`, `limit` and `fields` (of a fetch body, or of
/// `GET /documents` parameters).
fn fetch_documents(state: &NodeState, uid: &str, body: &Value) -> Answer {
    let Some(index) = state.indexes.get(uid) else {
        return index_not_found(uid);
    };
    let mut docs = match select(index, &body["filter"]) {
        Ok(d) => d,
        Err(message) => return error(400, "invalid_document_filter", "invalid_request", &message),
    };
    if let Some(ids) = body["ids"].as_array() {
        let ids: Vec<String> = ids.iter().filter_map(canonical).collect();
        docs.retain(|(id, _)| ids.contains(id));
    }
    if let Some(rules) = body["sort"].as_array() {
        let rules: Vec<(&str, bool)> = rules
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|r| r.rsplit_once(':').map(|(f, d)| (f, d == "asc")))
            .collect();
        let fields: Vec<&str> = rules.iter().map(|r| r.0).collect();
        if let Some(message) = unsortable(index, &fields) {
            return error(400, "invalid_document_sort", "invalid_request", &message);
        }
        // As a node: numbers, then strings, each in the rule's direction; missing values last.
        docs.sort_by(|(_, a), (_, b)| {
            for (field, asc) in &rules {
                let key = |d: &Value| match d.get(*field) {
                    Some(Value::Number(n)) => (0, n.as_f64().unwrap_or(0.0), String::new()),
                    Some(Value::String(s)) => (1, 0.0, s.to_lowercase()),
                    _ => (2, 0.0, String::new()),
                };
                let (ka, kb) = (key(a), key(b));
                let within = ka.1.total_cmp(&kb.1).then_with(|| ka.2.cmp(&kb.2));
                let within = if *asc { within } else { within.reverse() };
                let o = ka.0.cmp(&kb.0).then(within);
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        });
    }
    let offset = body["offset"].as_u64().unwrap_or(0) as usize;
    let limit = body["limit"].as_u64().unwrap_or(20) as usize;
    let fields: Option<Vec<&str>> = body["fields"]
        .as_array()
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .filter(|f: &Vec<&str>| !f.contains(&"*"));
    let total = docs.len();
    let results: Vec<Value> = docs
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|(_, d)| match (&fields, d) {
            (Some(f), Value::Object(o)) => Value::Object(
                o.iter()
                    .filter(|(k, _)| f.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            _ => d.clone(),
        })
        .collect();
    json_answer(
        200,
        json!({"results": results, "offset": offset, "limit": limit, "total": total}),
    )
}

/// A node's message for the first of `fields` that `index` cannot sort by.
fn unsortable(index: &Index, fields: &[&str]) -> Option<String> {
    let mut sortable: Vec<&str> = index
        .settings
        .get("sortableAttributes")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let field = fields.iter().find(|f| !sortable.contains(f))?;
    sortable.sort_unstable();
    let available = if sortable.is_empty() {
        "This index does not have configured sortable attributes.".to_string()
    } else {
        format!(
            "Available sortable attributes are: `{}`.",
            sortable.join(", ")
        )
    };
    Some(format!("Attribute `{field}` is not sortable. {available}"))
}

/// `GET /indexes/{uid}/search`: the query string read as Meilisearch reads it (lists split
/// on commas, numbers and booleans checked, unknown parameters refused), then searched as
/// the `POST` body it stands for.
pub(super) fn search_get(state: &mut NodeState, uid: &str, req: &Message) -> Answer {
    let mut body = Map::new();
    for part in req.query().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let k = miroir::query_string::percent_decode(k);
        let v = miroir::query_string::percent_decode(v);
        let invalid = |expected: &str| {
            let code = format!("invalid_search_{}", snake(&k));
            let message =
                format!("Invalid value in parameter `{k}`: could not parse `{v}` as {expected}");
            error(400, &code, "invalid_request", &message)
        };
        let value = match k.as_str() {
            "q" | "filter" | "distinct" | "matchingStrategy" | "highlightPreTag"
            | "highlightPostTag" | "cropMarker" => Value::from(v.clone()),
            "offset" | "limit" | "page" | "hitsPerPage" | "cropLength" => match v.parse::<u64>() {
                Ok(n) => Value::from(n),
                Err(_) => return invalid("a positive integer"),
            },
            "attributesToRetrieve"
            | "attributesToCrop"
            | "attributesToHighlight"
            | "facets"
            | "sort"
            | "attributesToSearchOn"
            | "locales" => Value::from(
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .collect::<Vec<_>>(),
            ),
            "showMatchesPosition"
            | "showRankingScore"
            | "showRankingScoreDetails"
            | "retrieveVectors" => match v.parse::<bool>() {
                Ok(b) => Value::from(b),
                Err(_) => return invalid("a boolean, expected either `true` or `false`"),
            },
            // Also `rankingScoreThreshold`, vectors, hybrid search and the network, which a
            // node accepts: the test node does not serve them (no test sends them).
            _ => {
                let message =
                    format!("Unknown parameter `{k}`: expected one of {GET_SEARCH_PARAMETERS}");
                return error(400, "bad_request", "invalid_request", &message);
            }
        };
        body.insert(k, value);
    }
    let mut as_post = req.clone();
    as_post.body = serde_json::to_vec(&body).unwrap_or_default();
    search(state, uid, &as_post)
}

const GET_SEARCH_PARAMETERS: &str = "`q`, `offset`, `limit`, `page`, `hitsPerPage`, `attributesToRetrieve`, `attributesToCrop`, `cropLength`, `cropMarker`, `attributesToHighlight`, `highlightPreTag`, `highlightPostTag`, `showMatchesPosition`, `filter`, `sort`, `distinct`, `facets`, `matchingStrategy`, `attributesToSearchOn`, `rankingScoreThreshold`, `locales`, `hybridEmbedder`, `hybridSemanticRatio`, `vector`, `retrieveVectors`, `personalizeUserContext`, `useNetwork`, `showRankingScore`, `showRankingScoreDetails`, `showPerformanceDetails`";

/// `hitsPerPage` as in an error code: `hits_per_page`.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}
