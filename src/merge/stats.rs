//! `GET /stats` and `GET /indexes/{uid}/stats` merged from every node's share: counts and
//! sizes summed, the shard tag removed from `fieldDistribution`.

use serde_json::{Map, Value};

use crate::shard_tag;

/// Numbers summed across nodes (each holds a disjoint share of the documents).
const SUMMED: &[&str] = &[
    "numberOfDocuments",
    "rawDocumentDbSize",
    "avgDocumentSize",
    "numberOfEmbeddedDocuments",
    "numberOfEmbeddings",
    "databaseSize",
    "usedDatabaseSize",
];

/// Merges index stats objects: counts and sizes summed, `isIndexing` or-ed, field counts
/// summed per field without the tag.
pub fn merge_index_stats(parts: &[&Value], copies: u64) -> Value {
    let Some(first) = parts.first().and_then(|v| v.as_object()) else {
        return Value::Null;
    };
    let mut out = Map::new();
    for (key, value) in first {
        let merged = match key.as_str() {
            "isIndexing" => Value::Bool(parts.iter().any(|p| p[key].as_bool() == Some(true))),
            "fieldDistribution" => {
                let mut fields: Map<String, Value> = Map::new();
                for p in parts {
                    for (f, n) in p[key].as_object().into_iter().flatten() {
                        if f == shard_tag::FIELD {
                            continue;
                        }
                        let prev = fields.get(f).and_then(Value::as_u64).unwrap_or(0);
                        fields.insert(f.clone(), Value::from(prev + n.as_u64().unwrap_or(0)));
                    }
                }
                for v in fields.values_mut() {
                    *v = Value::from(v.as_u64().unwrap_or(0) / copies);
                }
                // Meilisearch lists fields in name order.
                let mut sorted: Vec<(String, Value)> = fields.into_iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Object(sorted.into_iter().collect())
            }
            k if SUMMED.contains(&k) && value.is_u64() => {
                let total: u64 = parts.iter().filter_map(|p| p[k].as_u64()).sum();
                if k == "avgDocumentSize" {
                    value.clone()
                } else {
                    Value::from(total / copies)
                }
            }
            _ => value.clone(),
        };
        out.insert(key.clone(), merged);
    }
    if let (Some(size), Some(n)) = (
        out.get("rawDocumentDbSize").and_then(Value::as_u64),
        out.get("numberOfDocuments").and_then(Value::as_u64),
    ) {
        if out.contains_key("avgDocumentSize") {
            out.insert(
                "avgDocumentSize".into(),
                Value::from(size.checked_div(n).unwrap_or(0)),
            );
        }
    }
    Value::Object(out)
}

/// Merges `GET /stats` answers: database sizes summed, the latest `lastUpdate`, each
/// index's stats merged by [`merge_index_stats`].
pub fn merge_global_stats(bodies: &[&Value], copies: u64) -> Value {
    let mut out = bodies.first().map(|b| (*b).clone()).unwrap_or(Value::Null);
    for key in ["databaseSize", "usedDatabaseSize"] {
        let total: u64 = bodies.iter().filter_map(|b| b[key].as_u64()).sum();
        if out.get(key).is_some() {
            out[key] = Value::from(total);
        }
    }
    let last = bodies
        .iter()
        .filter_map(|b| b["lastUpdate"].as_str())
        .max()
        .map(str::to_string);
    if let Some(l) = last {
        out["lastUpdate"] = Value::from(l);
    }
    let mut indexes = Map::new();
    if let Some(names) = bodies.first().and_then(|b| b["indexes"].as_object()) {
        for name in names.keys() {
            let parts: Vec<&Value> = bodies
                .iter()
                .map(|b| &b["indexes"][name])
                .filter(|v| !v.is_null())
                .collect();
            indexes.insert(name.clone(), merge_index_stats(&parts, copies));
        }
    }
    out["indexes"] = Value::Object(indexes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn index_stats_sum_and_hide_the_tag() {
        let a = json!({"numberOfDocuments": 3, "rawDocumentDbSize": 300, "avgDocumentSize": 100, "isIndexing": false, "numberOfEmbeddings": 0, "numberOfEmbeddedDocuments": 0, "fieldDistribution": {"_miroir_shard": 3, "id": 3, "title": 2}});
        let b = json!({"numberOfDocuments": 1, "rawDocumentDbSize": 200, "avgDocumentSize": 200, "isIndexing": true, "numberOfEmbeddings": 0, "numberOfEmbeddedDocuments": 0, "fieldDistribution": {"_miroir_shard": 1, "id": 1, "genre": 1}});
        let m = merge_index_stats(&[&a, &b], 1);
        assert_eq!(
            m,
            json!({"numberOfDocuments": 4, "rawDocumentDbSize": 500, "avgDocumentSize": 125, "isIndexing": true, "numberOfEmbeddings": 0, "numberOfEmbeddedDocuments": 0, "fieldDistribution": {"genre": 1, "id": 4, "title": 2}})
        );
        let keys: Vec<&String> = m.as_object().unwrap().keys().collect();
        assert_eq!(
            keys[0], "numberOfDocuments",
            "field order follows the node's"
        );
    }
}
