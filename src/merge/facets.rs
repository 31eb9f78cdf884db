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
                let by = if v == "count" {
                    SortBy::Count
                } else {
                    SortBy::Alpha
                };
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

/// A facet value as Meilisearch compares strings: lowercased, accents removed.
pub fn normalize(value: &str) -> String {
    use unicode_normalization::char::is_combining_mark;
    use unicode_normalization::UnicodeNormalization;
    value
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .collect::<String>()
        .to_lowercase()
}

fn is_number(value: &str) -> Option<f64> {
    value.parse::<f64>().ok().filter(|_| value.trim() == value)
}

/// Above this many candidates a node orders numeric facet values numerically; below, it
/// walks them as strings (observed on Meilisearch v1.50).
const NUMERIC_ORDER_ABOVE: u64 = 3000;

/// The `alpha` order: numbers first (as strings for small candidate sets, numerically for
/// large ones), then strings by their normalized form.
fn alpha_cmp(a: &str, b: &str, candidates: u64) -> std::cmp::Ordering {
    match (is_number(a), is_number(b)) {
        (Some(x), Some(y)) if candidates > NUMERIC_ORDER_ABOVE => {
            x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal)
        }
        (Some(_), Some(_)) => a.cmp(b),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => normalize(a).cmp(&normalize(b)),
    }
}

/// Sums `facetDistribution` objects, then orders and truncates each facet. `candidates` is the
/// number of matching documents (it decides how a node orders numbers).
pub fn merge_distribution(
    parts: &[&Map<String, Value>],
    settings: &FacetSettings,
    candidates: u64,
) -> Map<String, Value> {
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
        // One value per normalized form; the first spelling seen is shown.
        for p in parts {
            for (value, count) in p.get(name).and_then(Value::as_object).into_iter().flatten() {
                let n = count.as_u64().unwrap_or(0);
                let key = normalize(value);
                match index.get(&key) {
                    Some(&i) => counts[i].1 += n,
                    None => {
                        index.insert(key, counts.len());
                        counts.push((value.clone(), n));
                    }
                }
            }
        }
        match settings.sort_for(name) {
            SortBy::Alpha => counts.sort_by(|a, b| alpha_cmp(&a.0, &b.0, candidates)),
            // Count ties: the greater value first, as a node walks them.
            SortBy::Count => {
                counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| alpha_cmp(&b.0, &a.0, u64::MAX)))
            }
        }
        counts.truncate(settings.max_values);
        let values: Map<String, Value> = counts
            .into_iter()
            .map(|(k, n)| (k, Value::from(n)))
            .collect();
        out.insert(name.clone(), Value::Object(values));
    }
    out
}

/// `facetStats`: the min of the mins and the max of the maxes.
pub fn merge_stats(parts: &[&Map<String, Value>]) -> Map<String, Value> {
    let mut out: Map<String, Value> = Map::new();
    for p in parts {
        for (name, stats) in p.iter() {
            let (Some(min), Some(max)) = (
                stats.get("min").and_then(Value::as_f64),
                stats.get("max").and_then(Value::as_f64),
            ) else {
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
        let alpha = merge_distribution(&parts, &FacetSettings::default(), 10);
        assert_eq!(alpha["color"], json!({"apple": 4, "Blue": 3, "red": 1}));
        // Few candidates: numbers in string order; many: numerically.
        let keys: Vec<&String> = alpha["age"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["10", "100", "9"]);
        let many = merge_distribution(&parts, &FacetSettings::default(), 5000);
        let keys: Vec<&String> = many["age"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["9", "10", "100"]);
        // One value per normalized form, accents and case aside.
        let c = json!({"c": {"Éclair": 1}});
        let d = json!({"c": {"eclair": 2, "Zoo": 1}});
        let m = merge_distribution(
            &[c.as_object().unwrap(), d.as_object().unwrap()],
            &FacetSettings::default(),
            3,
        );
        assert_eq!(m["c"], json!({"Éclair": 3, "Zoo": 1}));
        let by_count = FacetSettings {
            max_values: 2,
            sort_by: HashMap::from([("*".to_string(), SortBy::Count)]),
        };
        let counted = merge_distribution(&parts, &by_count, 10);
        assert_eq!(counted["color"], json!({"apple": 4, "Blue": 3}));
    }

    #[test]
    fn stats_span_all_shards() {
        let a = json!({"age": {"min": 3.0, "max": 9.0}});
        let b = json!({"age": {"min": 1.0, "max": 5.0}, "year": {"min": 2000.0, "max": 2000.0}});
        let m = merge_stats(&[a.as_object().unwrap(), b.as_object().unwrap()]);
        assert_eq!(
            Value::Object(m),
            json!({"age": {"min": 1.0, "max": 9.0}, "year": {"min": 2000.0, "max": 2000.0}})
        );
    }
}
