//! The gateway's fields in index settings: nodes must keep the shard tag filterable and the
//! insertion order sortable; clients must never see either. Writes get them added to
//! `filterableAttributes` and `sortableAttributes`; reads (settings, task details) get them
//! removed, so a client's settings round-trip exactly as they were set.

use serde_json::{json, Value};

use super as shard_tag;
use crate::transport::NodeRequest;

/// The settings the gateway keeps a value of its own in: `(setting, its route, the value)`.
pub const KEPT: [(&str, &str, &str); 2] = [
    (
        "filterableAttributes",
        "filterable-attributes",
        shard_tag::FIELD,
    ),
    (
        "sortableAttributes",
        "sortable-attributes",
        shard_tag::order::FIELD,
    ),
];

/// The gateway's field in `setting`, if it keeps one there.
fn kept_field(setting: &str) -> Option<&'static str> {
    KEPT.iter().find(|(s, _, _)| *s == setting).map(|k| k.2)
}

/// The kept setting a route (`filterable-attributes` ...) names.
pub fn kept_setting_of_route(route: &str) -> Option<&'static str> {
    KEPT.iter().find(|(_, r, _)| *r == route).map(|k| k.0)
}

/// Whether an entry of a kept setting is the gateway's own.
pub fn is_kept_rule(setting: &str, rule: &Value) -> bool {
    let Some(field) = kept_field(setting) else {
        return false;
    };
    match rule {
        Value::String(s) => s == field,
        Value::Object(o) => o
            .get("attributePatterns")
            .and_then(Value::as_array)
            .is_some_and(|p| p.len() == 1 && p[0] == field),
        _ => false,
    }
}

/// The client's value of a kept setting (an array, or `null` to reset) with the gateway's
/// field added.
pub fn with_kept(setting: &str, value: &Value) -> Value {
    let mut rules = match value {
        Value::Array(rules) => rules.clone(),
        _ => Vec::new(),
    };
    if let Some(field) = kept_field(setting) {
        if !rules.iter().any(|r| is_kept_rule(setting, r)) {
            rules.push(Value::from(field));
        }
    }
    Value::Array(rules)
}

/// Removes the gateway's field from a kept setting's value.
pub fn hide_kept(setting: &str, value: &mut Value) {
    if let Value::Array(rules) = value {
        rules.retain(|r| !is_kept_rule(setting, r));
    }
}

/// Removes the gateway's fields from a whole settings object (`GET /indexes/{uid}/settings`,
/// task details).
pub fn hide_in_settings(settings: &mut Value) {
    for (setting, _, _) in KEPT {
        if let Some(v) = settings.get_mut(setting) {
            hide_kept(setting, v);
        }
    }
}

/// Rewrites a `PATCH /indexes/{uid}/settings` body so the gateway's fields stay. Returns
/// `None` for a body that is not a JSON object (the nodes then answer the client's error as is).
pub fn patch_body_with_tag(body: &[u8]) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object_mut()?;
    for (setting, _, _) in KEPT {
        if let Some(v) = object.get_mut(setting) {
            *v = with_kept(setting, v);
        }
    }
    serde_json::to_vec(&value).ok()
}

/// The internal request that puts the gateway's fields back in `settings` (a new index, or
/// one whose settings were reset) and, if given, the nodes' `maxValuesPerFacet`, as one task.
pub fn keep(index: &str, settings: &[&str], max_values_per_facet: Option<u64>) -> NodeRequest {
    let mut body: serde_json::Map<String, Value> = settings
        .iter()
        .map(|s| (s.to_string(), with_kept(s, &Value::Null)))
        .collect();
    if let Some(v) = max_values_per_facet {
        body.insert("faceting".into(), json!({"maxValuesPerFacet": v}));
    }
    NodeRequest {
        method: http::Method::PATCH,
        path: format!("/indexes/{index}/settings"),
        headers: vec![(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        )],
        body: Value::Object(body).to_string().into(),
    }
}

/// Every setting of a Meilisearch v1.50 index, as `DELETE /indexes/{uid}/settings` resets
/// them (`Settings::cleared`, the keys of that task's details).
pub const ALL_SETTINGS: [&str; 22] = [
    "displayedAttributes",
    "searchableAttributes",
    "filterableAttributes",
    "sortableAttributes",
    "foreignKeys",
    "rankingRules",
    "stopWords",
    "nonSeparatorTokens",
    "separatorTokens",
    "dictionary",
    "synonyms",
    "distinctAttribute",
    "proximityPrecision",
    "typoTolerance",
    "faceting",
    "pagination",
    "embedders",
    "searchCutoffMs",
    "localizedAttributes",
    "facetSearch",
    "prefixSearch",
    "chat",
];

/// The `PATCH` body of `DELETE /indexes/{uid}/settings` as one task per node: every setting
/// reset, but the gateway's fields kept and facet values kept `max_values_per_facet` deep (what
/// a reset and its two follow-ups would leave).
pub fn reset_all(max_values_per_facet: u64) -> Vec<u8> {
    let mut body: serde_json::Map<String, Value> = ALL_SETTINGS
        .iter()
        .map(|k| (k.to_string(), Value::Null))
        .collect();
    for (setting, _, field) in KEPT {
        body.insert(setting.into(), json!([field]));
    }
    body.insert(
        "faceting".into(),
        json!({"maxValuesPerFacet": max_values_per_facet, "sortFacetValuesBy": null}),
    );
    Value::Object(body).to_string().into_bytes()
}

/// What a new index gets on every node after its first documents: the gateway's fields kept
/// and facet values kept deeper than the client's `value` (see `crate::facet_depth`), in one task.
pub fn new_index(index: &str, max_values_per_facet: u64) -> NodeRequest {
    NodeRequest {
        method: http::Method::PATCH,
        path: format!("/indexes/{index}/settings"),
        headers: vec![(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        )],
        body: json!({
            "filterableAttributes": [shard_tag::FIELD],
            "sortableAttributes": [shard_tag::order::FIELD],
            "faceting": {"maxValuesPerFacet": max_values_per_facet},
        })
        .to_string()
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_is_added_once_and_hidden_again() {
        let client =
            json!(["genre", {"attributePatterns": ["year"], "features": {"facetSearch": true}}]);
        let f = "filterableAttributes";
        let stored = with_kept(f, &client);
        assert_eq!(stored.as_array().unwrap().len(), 3);
        assert_eq!(with_kept(f, &stored), stored, "idempotent");
        let sortable = with_kept("sortableAttributes", &json!(["year"]));
        assert_eq!(sortable, json!(["year", "_miroir_order"]));
        let mut shown = json!({"filterableAttributes": stored, "sortableAttributes": sortable});
        hide_in_settings(&mut shown);
        assert_eq!(shown["filterableAttributes"], client);
        assert_eq!(shown["sortableAttributes"], json!(["year"]));
        assert_eq!(with_kept(f, &Value::Null), json!([shard_tag::FIELD]));
        assert!(is_kept_rule(
            f,
            &json!({"attributePatterns": ["_miroir_shard"]})
        ));
        assert!(!is_kept_rule(f, &json!("_miroir_order")));
        assert_eq!(
            with_kept("rankingRules", &json!(["words"])),
            json!(["words"])
        );
    }

    #[test]
    fn patch_bodies_keep_other_settings_untouched() {
        let body = br#"{"searchableAttributes":["title"],"filterableAttributes":null,"sortableAttributes":["p"]}"#;
        let out: Value = serde_json::from_slice(&patch_body_with_tag(body).unwrap()).unwrap();
        assert_eq!(
            out,
            json!({"searchableAttributes": ["title"], "filterableAttributes": ["_miroir_shard"], "sortableAttributes": ["p", "_miroir_order"]})
        );
        let untouched = br#"{"rankingRules":["words"]}"#;
        let out: Value = serde_json::from_slice(&patch_body_with_tag(untouched).unwrap()).unwrap();
        assert_eq!(out, json!({"rankingRules": ["words"]}));
        assert!(patch_body_with_tag(b"[1]").is_none());
    }
}
