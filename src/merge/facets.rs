//! Facet distributions and stats summed over shards, then ordered and truncated as one node
//! does (`sortFacetValuesBy`, `maxValuesPerFacet`).

use std::collections::HashMap;

use serde_json::{Map, Value};

/// How a facet's values are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    Alpha,
    Count,
}

/// The index's faceting settings that shape a distribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacetSettings {
    pub max_values: usize,
    /// By facet name; `*` applies to the others.
    pub sort_by: HashMap<String, SortBy>,
}

impl Default for FacetSettings {
    fn default() -> Self {
        FacetSettings {
            max_values: 100,
            sort_by: HashMap::from([("*".to_string(), SortBy::Alpha)]),
        }
    }
}

impl FacetSettings {
    /// From a node's `faceting` settings object.
    pub fn from_settings(faceting: &Value) -> FacetSettings {
        let mut s = FacetSettings::default();
        if let Some(n) = faceting.get("maxValuesPerFacet").and_then(Value::as_u64) {
            s.max_values = n as usize;
        }
        if let Some(map) = faceting.get("sortFacetValuesBy").and_then(Value::as_object) {
            for (k, v) in map {
                let by = if v == "count" { SortBy::Count } else { SortBy::Alpha };
                s.sort_by.insert(k.clone(), by);
            }
        }
        s
    }

    fn sort_for(&self, facet: &str) -> SortBy {
        self.sort_by
            .get(facet)
            .or_else(|| self.sort_by.get("*"))
            .copied()
            .unwrap_or(SortBy::Alpha)
    }
}

/// The key Meilisearch orders facet values by in `alpha` mode: numbers numerically first,
/// then strings by their lowercased form.
fn alpha_key(value: &str) -> (u8, f64, String) {
    match value.parse::<f64>() {
        Ok(n) if value.trim() == value => (0, n, String::new()),
        _ => (1, 0.0, value.to_lowercase()),
    }
}

/// Sums `facetDistribution` objects, then orders and truncates each facet.
pub fn merge_distribution(parts: &[&Map<String, Value>], settings: &FacetSettings) -> Map<String, Value> {
    let mut out = Map::new();
    let mut names: Vec<&String> = Vec::new();
    for p in parts {
        for name in p.keys() {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    for name in names {
        let mut counts: Vec<(String, u64)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for p in parts {
            for (value, count) in p.get(name).and_then(Value::as_object).into_iter().flatten() {
                let n = count.as_u64().unwrap_or(0);
                match index.get(value) {
                    Some(&i) => counts[i].1 += n,
                    None => {
                        index.insert(value.clone(), counts.len());
                        counts.push((value.clone(), n));
                    }
                }
            }
        }
        match settings.sort_for(name) {
            SortBy::Alpha => counts.sort_by(|a, b| {
                let (ka, kb) = (alpha_key(&a.0), alpha_key(&b.0));
                ka.0.cmp(&kb.0)
                    .then(ka.1.partial_cmp(&kb.1).unwrap_or(std::cmp::Ordering::Equal))
                    .then_with(|| ka.2.cmp(&kb.2))
            }),
            SortBy::Count => counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| alpha_key(&a.0).2.cmp(&alpha_key(&b.0).2))),
        }
        counts.truncate(settings.max_values);
        let values: Map<String, Value> = counts.into_iter().map(|(k, n)| (k, Value::from(n))).collect();
        out.insert(name.clone(), Value::Object(values));
    }
    out
}

/// `facetStats`: the min of the mins and the max of the maxes.
pub fn merge_stats(parts: &[&Map<String, Value>]) -> Map<String, Value> {
    let mut out: Map<String, Value> = Map::new();
    for p in parts {
        for (name, stats) in p.iter() {
            let (Some(min), Some(max)) = (stats.get("min").and_then(Value::as_f64), stats.get("max").and_then(Value::as_f64)) else {
                continue;
            };
            match out.get_mut(name) {
                Some(existing) => {
                    if min < existing["min"].as_f64().unwrap_or(f64::MAX) {
                        existing["min"] = stats["min"].clone();
                    }
                    if max > existing["max"].as_f64().unwrap_or(f64::MIN) {
                        existing["max"] = stats["max"].clone();
                    }
                }
                None => {
                    out.insert(name.clone(), stats.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_add_up_and_follow_the_index_order() {
        let a = json!({"color": {"Blue": 2, "red": 1}, "age": {"10": 1, "9": 2}});
        let b = json!({"color": {"Blue": 1, "apple": 4}, "age": {"100": 1}});
        let parts = [a.as_object().unwrap(), b.as_object().unwrap()];
        let alpha = merge_distribution(&parts, &FacetSettings::default());
        assert_eq!(alpha["color"], json!({"apple": 4, "Blue": 3, "red": 1}));
        let keys: Vec<&String> = alpha["age"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["9", "10", "100"]);
        let by_count = FacetSettings {
            max_values: 2,
            sort_by: HashMap::from([("*".to_string(), SortBy::Count)]),
        };
        let counted = merge_distribution(&parts, &by_count);
        assert_eq!(counted["color"], json!({"apple": 4, "Blue": 3}));
    }

    #[test]
    fn stats_span_all_shards() {
        let a = json!({"age": {"min": 3.0, "max": 9.0}});
        let b = json!({"age": {"min": 1.0, "max": 5.0}, "year": {"min": 2000.0, "max": 2000.0}});
        let m = merge_stats(&[a.as_object().unwrap(), b.as_object().unwrap()]);
        assert_eq!(Value::Object(m), json!({"age": {"min": 1.0, "max": 9.0}, "year": {"min": 2000.0, "max": 2000.0}}));
    }
}
