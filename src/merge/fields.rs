//! `POST /indexes/{uid}/fields` merged over shards: every node lists the fields of its own
//! documents (their configuration comes from the settings, the same on every node), so the
//! index's fields are the union by name, sorted by name, then paged; the tag is not one.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::shard_tag;

/// The client's page of the union of `lists` (each node's `results`, every field it has).
pub fn merge_fields(lists: &[&[Value]], offset: usize, limit: usize) -> Value {
    let mut fields: BTreeMap<&str, &Value> = BTreeMap::new();
    for list in lists {
        for field in *list {
            if let Some(name) = field["name"].as_str() {
                if !shard_tag::is_reserved(name.as_bytes()) {
                    fields.entry(name).or_insert(field);
                }
            }
        }
    }
    let total = fields.len();
    let results: Vec<&Value> = fields.into_values().skip(offset).take(limit).collect();
    json!({"results": results, "offset": offset, "limit": limit, "total": total})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str) -> Value {
        json!({"name": name, "displayed": {"enabled": true}})
    }

    #[test]
    fn the_union_by_name_is_paged_without_the_tag() {
        let a = [field("_miroir_shard"), field("genre"), field("id")];
        let b = [field("_miroir_shard"), field("id"), field("title")];
        let m = merge_fields(&[&a, &b], 1, 2);
        assert_eq!(
            m,
            json!({"results": [field("id"), field("title")], "offset": 1, "limit": 2, "total": 3})
        );
        assert_eq!(merge_fields(&[&a, &b], 5, 2)["results"], json!([]));
    }
}
