//! The shard tag in index settings: nodes must keep it filterable, clients must never see it.
//! Writes get it added to `filterableAttributes`; reads (settings, task details) get it removed,
//! so a client's settings round-trip exactly as they were set.

use serde_json::{json, Value};

use super as shard_tag;
use crate::transport::NodeRequest;

/// Whether a `filterableAttributes` entry is the gateway's own.
pub fn is_tag_rule(rule: &Value) -> bool {
    match rule {
        Value::String(s) => s == shard_tag::FIELD,
        Value::Object(o) => o
            .get("attributePatterns")
            .and_then(Value::as_array)
            .is_some_and(|p| p.len() == 1 && p[0] == shard_tag::FIELD),
        _ => false,
    }
}

/// The rule the gateway adds.
pub fn tag_rule() -> Value {
    Value::from(shard_tag::FIELD)
}

/// The client's `filterableAttributes` value (an array, or `null` to reset) with the tag added.
pub fn with_tag(filterable: &Value) -> Value {
    let mut rules = match filterable {
        Value::Array(rules) => rules.clone(),
        _ => Vec::new(),
    };
    if !rules.iter().any(is_tag_rule) {
        rules.push(tag_rule());
    }
    Value::Array(rules)
}

/// Removes the tag from a `filterableAttributes` value.
pub fn hide_in_filterable(filterable: &mut Value) {
    if let Value::Array(rules) = filterable {
        rules.retain(|r| !is_tag_rule(r));
    }
}

/// Removes the tag from a whole settings object (`GET /indexes/{uid}/settings`).
pub fn hide_in_settings(settings: &mut Value) {
    if let Some(f) = settings.get_mut("filterableAttributes") {
        hide_in_filterable(f);
    }
}

/// Rewrites a `PATCH /indexes/{uid}/settings` body so the tag stays filterable. Returns `None`
/// for a body that is not a JSON object (the nodes then answer the client's error as is).
pub fn patch_body_with_tag(body: &[u8]) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object_mut()?;
    if let Some(f) = object.get_mut("filterableAttributes") {
        *f = with_tag(f);
    }
    serde_json::to_vec(&value).ok()
}

/// The internal request that makes the tag filterable on a new index.
pub fn keep_filterable(index: &str) -> NodeRequest {
    NodeRequest {
        method: http::Method::PUT,
        path: format!("/indexes/{index}/settings/filterable-attributes"),
        headers: vec![(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        )],
        body: json!([shard_tag::FIELD]).to_string().into(),
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
/// reset, but the tag kept filterable and facet values kept `max_values_per_facet` deep (what
/// a reset and its two follow-ups would leave).
pub fn reset_all(max_values_per_facet: u64) -> Vec<u8> {
    let mut body: serde_json::Map<String, Value> = ALL_SETTINGS
        .iter()
        .map(|k| (k.to_string(), Value::Null))
        .collect();
    body.insert("filterableAttributes".into(), json!([shard_tag::FIELD]));
    body.insert(
        "faceting".into(),
        json!({"maxValuesPerFacet": max_values_per_facet, "sortFacetValuesBy": null}),
    );
    Value::Object(body).to_string().into_bytes()
}

/// What a new index gets on every node after its first documents: the tag filterable and
/// facet values kept deeper than the client's `value` (see `crate::facet_depth`), in one task.
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
        let stored = with_tag(&client);
        assert_eq!(stored.as_array().unwrap().len(), 3);
        assert_eq!(with_tag(&stored), stored, "idempotent");
        let mut shown = json!({"filterableAttributes": stored, "sortableAttributes": ["year"]});
        hide_in_settings(&mut shown);
        assert_eq!(shown["filterableAttributes"], client);
        assert_eq!(with_tag(&Value::Null), json!([shard_tag::FIELD]));
        assert!(is_tag_rule(
            &json!({"attributePatterns": ["_miroir_shard"]})
        ));
    }

    #[test]
    fn patch_bodies_keep_other_settings_untouched() {
        let body = br#"{"searchableAttributes":["title"],"filterableAttributes":null}"#;
        let out: Value = serde_json::from_slice(&patch_body_with_tag(body).unwrap()).unwrap();
        assert_eq!(
            out,
            json!({"searchableAttributes": ["title"], "filterableAttributes": ["_miroir_shard"]})
        );
        let untouched = br#"{"rankingRules":["words"]}"#;
        let out: Value = serde_json::from_slice(&patch_body_with_tag(untouched).unwrap()).unwrap();
        assert_eq!(out, json!({"rankingRules": ["words"]}));
        assert!(patch_body_with_tag(b"[1]").is_none());
    }
}
