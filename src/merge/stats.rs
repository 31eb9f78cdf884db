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
            // Sizes of each internal database (`showInternalDatabaseSizes`), summed by name.
            "internalDatabaseSizes" => {
                let mut sizes: Map<String, Value> = Map::new();
                for p in parts {
                    for (db, n) in p[key].as_object().into_iter().flatten() {
                        let prev = sizes.get(db).and_then(Value::as_u64).unwrap_or(0);
                        sizes.insert(db.clone(), Value::from(prev + n.as_u64().unwrap_or(0)));
                    }
                }
                // Largest first, as a node lists them.
                let mut sorted: Vec<(String, u64)> = sizes
                    .into_iter()
                    .map(|(db, n)| (db, n.as_u64().unwrap_or(0) / copies))
                    .collect();
                sorted.sort_by_key(|s| std::cmp::Reverse(s.1));
                Value::Object(
                    sorted
                        .into_iter()
                        .map(|(db, n)| (db, Value::from(n)))
                        .collect(),
                )
            }
            "fieldDistribution" => {
                let mut fields: Map<String, Value> = Map::new();
                for p in parts {
                    for (f, n) in p[key].as_object().into_iter().flatten() {
                        if shard_tag::is_reserved(f.as_bytes()) {
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

/// Every size in merged stats (global or of one index) as Meilisearch writes it with
/// `sizeFormat=human`: binary units, at most two decimals (`"9.77 KiB"`, `"10 B"`).
pub fn humanize_sizes(stats: &mut Value) {
    let human = |v: &mut Value| {
        if let Some(bytes) = v.as_u64() {
            let size =
                byte_unit::Byte::from_u64(bytes).get_appropriate_unit(byte_unit::UnitType::Binary);
            *v = Value::from(format!("{size:#.2}"));
        }
    };
    let index = |stats: &mut Value| {
        for key in ["rawDocumentDbSize", "avgDocumentSize"] {
            if let Some(v) = stats.get_mut(key) {
                human(v);
            }
        }
        let internal = stats
            .get_mut("internalDatabaseSizes")
            .and_then(Value::as_object_mut);
        for v in internal.into_iter().flat_map(|m| m.values_mut()) {
            human(v);
        }
    };
    if let Some(indexes) = stats.get_mut("indexes").and_then(Value::as_object_mut) {
        for stats in indexes.values_mut() {
            index(stats);
        }
        for key in ["databaseSize", "usedDatabaseSize"] {
            if let Some(v) = stats.get_mut(key) {
                human(v);
            }
        }
    } else {
        index(stats);
    }
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

    #[test]
    fn human_sizes_are_formatted_after_summing() {
        let a = json!({"databaseSize": 1024, "usedDatabaseSize": 1000, "indexes": {"m": {"numberOfDocuments": 1, "rawDocumentDbSize": 5000, "avgDocumentSize": 5000, "isIndexing": false, "internalDatabaseSizes": {"main": 7000}, "fieldDistribution": {}}}});
        let b = json!({"databaseSize": 9216, "usedDatabaseSize": 1000, "indexes": {"m": {"numberOfDocuments": 1, "rawDocumentDbSize": 5000, "avgDocumentSize": 5000, "isIndexing": false, "internalDatabaseSizes": {"main": 3240}, "fieldDistribution": {}}}});
        let mut m = merge_global_stats(&[&a, &b], 1);
        assert_eq!(m["indexes"]["m"]["internalDatabaseSizes"]["main"], 10240);
        let c = json!({"internalDatabaseSizes": {"a": 10, "b": 30}});
        let d = json!({"internalDatabaseSizes": {"a": 30, "c": 5}});
        let sizes = merge_index_stats(&[&c, &d], 1)["internalDatabaseSizes"].to_string();
        assert_eq!(sizes, r#"{"a":40,"b":30,"c":5}"#, "largest first");
        humanize_sizes(&mut m);
        assert_eq!(m["databaseSize"], "10 KiB");
        assert_eq!(m["usedDatabaseSize"], "1.95 KiB");
        assert_eq!(m["indexes"]["m"]["rawDocumentDbSize"], "9.77 KiB");
        assert_eq!(m["indexes"]["m"]["avgDocumentSize"], "4.88 KiB");
        assert_eq!(m["indexes"]["m"]["internalDatabaseSizes"]["main"], "10 KiB");
        assert_eq!(m["indexes"]["m"]["numberOfDocuments"], 2);
        let mut tiny = json!({"rawDocumentDbSize": 0, "avgDocumentSize": 512});
        humanize_sizes(&mut tiny);
        assert_eq!(
            tiny,
            json!({"rawDocumentDbSize": "0 B", "avgDocumentSize": "512 B"})
        );
    }
}
