//! Facet-search answers merged: counts summed per value, then ordered and truncated as one
//! node orders its `facetHits`.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::facets::{normalize, FacetSettings, SortBy};

pub fn merge(parts: &[Value], settings: &FacetSettings, facet: &str, gateway_ms: u64) -> Value {
    let Some(first) = parts.first().and_then(Value::as_object) else {
        return Value::Null;
    };
    let mut hits: Vec<(String, u64)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for p in parts {
        for h in p["facetHits"].as_array().into_iter().flatten() {
            let value = h["value"].as_str().unwrap_or("").to_string();
            let count = h["count"].as_u64().unwrap_or(0);
            match index.get(&normalize(&value)) {
                Some(&i) => hits[i].1 += count,
                None => {
                    index.insert(normalize(&value), hits.len());
                    hits.push((value, count));
                }
            }
        }
    }
    let by_count = settings
        .sort_by
        .get(facet)
        .or_else(|| settings.sort_by.get("*"))
        == Some(&SortBy::Count);
    // By count: count descending, then value descending; else by normalized value.
    if by_count {
        hits.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    } else {
        hits.sort_by_key(|h| normalize(&h.0));
    }
    hits.truncate(settings.max_values);
    let mut out = Map::new();
    for (key, value) in first {
        let merged = match key.as_str() {
            "facetHits" => Value::Array(
                hits.iter()
                    .map(|(v, c)| serde_json::json!({"value": v, "count": c}))
                    .collect(),
            ),
            "processingTimeMs" => {
                let slowest = parts
                    .iter()
                    .filter_map(|p| p["processingTimeMs"].as_u64())
                    .max()
                    .unwrap_or(0);
                Value::from(slowest + gateway_ms)
            }
            "exhaustiveFacetCount" => {
                Value::Bool(parts.iter().all(|p| p[key].as_bool() != Some(false)))
            }
            _ => value.clone(),
        };
        out.insert(key.clone(), merged);
    }
    Value::Object(out)
}
