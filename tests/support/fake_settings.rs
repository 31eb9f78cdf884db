//! The test node's settings: Meilisearch v1.50's settings in its order with their
//! defaults, how each value is checked (deserr's messages), updated field by field and
//! reset, and the settings view of an index.

use serde_json::{json, Map, Value};

use super::fake_export_request::*;
use super::fake_meili::*;
use super::fake_node::{error, Answer, Index, NodeState};

/// How a setting's value is checked and kept.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Kind {
    /// `displayedAttributes`, `searchableAttributes`: strings; a reset shows `["*"]`.
    Wildcard,
    /// Strings kept sorted and deduplicated.
    Set,
    /// `rankingRules`: strings, each a rule.
    Rules,
    /// Any array (`filterableAttributes` rules, `foreignKeys`, `localizedAttributes`).
    Array,
    /// `synonyms`: arrays of strings by word, kept sorted by word.
    Synonyms,
    /// A string, one of these when any are given.
    Str(&'static [&'static str]),
    /// An object whose fields (in this order) are updated one by one.
    Struct(&'static [&'static str]),
    /// An object whose entries are updated one by one (`embedders`).
    Entries,
    /// Any object, replaced.
    Object,
    UInt,
    Bool,
}

impl Kind {
    /// Objects have their own route answering `PATCH`; the others answer `PUT`.
    pub(super) fn is_struct(self) -> bool {
        matches!(self, Kind::Struct(_) | Kind::Entries)
    }
}

pub(super) struct Setting {
    pub(super) name: &'static str,
    pub(super) route: &'static str,
    pub(super) code: &'static str,
    pub(super) kind: Kind,
    /// Shown by `GET /indexes/{uid}/settings` (the others need experimental features).
    pub(super) shown: bool,
    default: &'static str,
}

const fn setting(
    name: &'static str,
    route: &'static str,
    code: &'static str,
    kind: Kind,
    default: &'static str,
) -> Setting {
    Setting {
        name,
        route,
        code,
        kind,
        shown: true,
        default,
    }
}

/// Meilisearch v1.50's settings, in its order, with their defaults.
pub(super) const SETTINGS: [Setting; 22] = [
    setting(
        "displayedAttributes",
        "displayed-attributes",
        "invalid_settings_displayed_attributes",
        Kind::Wildcard,
        r#"["*"]"#,
    ),
    setting(
        "searchableAttributes",
        "searchable-attributes",
        "invalid_settings_searchable_attributes",
        Kind::Wildcard,
        r#"["*"]"#,
    ),
    setting(
        "filterableAttributes",
        "filterable-attributes",
        "invalid_settings_filterable_attributes",
        Kind::Array,
        "[]",
    ),
    setting(
        "sortableAttributes",
        "sortable-attributes",
        "invalid_settings_sortable_attributes",
        Kind::Set,
        "[]",
    ),
    Setting {
        shown: false,
        ..setting(
            "foreignKeys",
            "foreign-keys",
            "invalid_settings_foreign_keys",
            Kind::Array,
            "[]",
        )
    },
    setting(
        "rankingRules",
        "ranking-rules",
        "invalid_settings_ranking_rules",
        Kind::Rules,
        r#"["words","typo","proximity","attributeRank","sort","wordPosition","exactness"]"#,
    ),
    setting(
        "stopWords",
        "stop-words",
        "invalid_settings_stop_words",
        Kind::Set,
        "[]",
    ),
    setting(
        "nonSeparatorTokens",
        "non-separator-tokens",
        "invalid_settings_non_separator_tokens",
        Kind::Set,
        "[]",
    ),
    setting(
        "separatorTokens",
        "separator-tokens",
        "invalid_settings_separator_tokens",
        Kind::Set,
        "[]",
    ),
    setting(
        "dictionary",
        "dictionary",
        "invalid_settings_dictionary",
        Kind::Set,
        "[]",
    ),
    setting(
        "synonyms",
        "synonyms",
        "invalid_settings_synonyms",
        Kind::Synonyms,
        "{}",
    ),
    setting(
        "distinctAttribute",
        "distinct-attribute",
        "invalid_settings_distinct_attribute",
        Kind::Str(&[]),
        "null",
    ),
    setting(
        "proximityPrecision",
        "proximity-precision",
        "invalid_settings_proximity_precision",
        Kind::Str(&["byWord", "byAttribute"]),
        r#""byWord""#,
    ),
    setting(
        "typoTolerance",
        "typo-tolerance",
        "invalid_settings_typo_tolerance",
        Kind::Struct(&[
            "enabled",
            "minWordSizeForTypos",
            "disableOnWords",
            "disableOnAttributes",
            "disableOnNumbers",
        ]),
        r#"{"enabled":true,"minWordSizeForTypos":{"oneTypo":5,"twoTypos":9},"disableOnWords":[],"disableOnAttributes":[],"disableOnNumbers":false}"#,
    ),
    setting(
        "faceting",
        "faceting",
        "invalid_settings_faceting",
        Kind::Struct(&["maxValuesPerFacet", "sortFacetValuesBy"]),
        r#"{"maxValuesPerFacet":100,"sortFacetValuesBy":{"*":"alpha"}}"#,
    ),
    setting(
        "pagination",
        "pagination",
        "invalid_settings_pagination",
        Kind::Struct(&["maxTotalHits"]),
        r#"{"maxTotalHits":1000}"#,
    ),
    setting(
        "embedders",
        "embedders",
        "invalid_settings_embedders",
        Kind::Entries,
        "{}",
    ),
    setting(
        "searchCutoffMs",
        "search-cutoff-ms",
        "invalid_settings_search_cutoff_ms",
        Kind::UInt,
        "null",
    ),
    setting(
        "localizedAttributes",
        "localized-attributes",
        "invalid_settings_localized_attributes",
        Kind::Array,
        "null",
    ),
    setting(
        "facetSearch",
        "facet-search",
        "invalid_settings_facet_search",
        Kind::Bool,
        "true",
    ),
    setting(
        "prefixSearch",
        "prefix-search",
        "invalid_settings_prefix_search",
        Kind::Str(&["indexingTime", "disabled"]),
        r#""indexingTime""#,
    ),
    Setting {
        shown: false,
        ..setting(
            "chat",
            "chat",
            "invalid_settings_index_chat",
            Kind::Object,
            "null",
        )
    },
];

impl Setting {
    pub(super) fn default_value(&self) -> Value {
        serde_json::from_str(self.default).expect("default setting")
    }

    /// Checks a value sent for the setting (`null` resets it) and returns it as Meilisearch
    /// keeps and reports it; `at` is where the value stands in the body (`.name`, or empty
    /// on the setting's own route), for the error messages.
    pub(super) fn check(&self, value: &Value, at: &str) -> Result<Value, Answer> {
        let wrong = |path: &str, what: &str, v: &Value| {
            let place = if path.is_empty() {
                String::new()
            } else {
                format!(" at `{path}`")
            };
            let message = format!(
                "Invalid value type{place}: expected {what}, but found {}",
                found(v)
            );
            error(400, self.code, "invalid_request", &message)
        };
        let strings = |v: &Value| -> Result<Vec<String>, Answer> {
            let Value::Array(items) = v else {
                return Err(wrong(at, "an array", v));
            };
            items
                .iter()
                .enumerate()
                .map(|(i, x)| match x {
                    Value::String(s) => Ok(s.clone()),
                    x => Err(wrong(&format!("{at}[{i}]"), "a string", x)),
                })
                .collect()
        };
        if value.is_null() {
            return Ok(match self.kind {
                Kind::Wildcard => json!(["*"]),
                _ => Value::Null,
            });
        }
        Ok(match self.kind {
            Kind::Wildcard => json!(strings(value)?),
            Kind::Set => {
                let mut s = strings(value)?;
                s.sort();
                s.dedup();
                json!(s)
            }
            Kind::Rules => {
                let rules = strings(value)?;
                const NAMED: [&str; 8] = [
                    "words",
                    "typo",
                    "proximity",
                    "attribute",
                    "attributeRank",
                    "wordPosition",
                    "sort",
                    "exactness",
                ];
                for (i, r) in rules.iter().enumerate() {
                    let custom = r
                        .rsplit_once(':')
                        .is_some_and(|(f, o)| !f.is_empty() && (o == "asc" || o == "desc"));
                    if !custom && !NAMED.contains(&r.as_str()) {
                        let message = format!("Invalid value at `{at}[{i}]`: `{r}` ranking rule is invalid. Valid ranking rules are words, typo, sort, proximity, attribute, exactness and custom ranking rules.");
                        return Err(error(400, self.code, "invalid_request", &message));
                    }
                }
                json!(rules)
            }
            Kind::Array if value.is_array() => value.clone(),
            Kind::Array => return Err(wrong(at, "an array", value)),
            Kind::Synonyms => {
                let Value::Object(words) = value else {
                    return Err(wrong(at, "an object", value));
                };
                let mut out: Vec<(String, Value)> = Vec::new();
                for (word, list) in words {
                    out.push((word.clone(), json!(strings(list)?)));
                }
                out.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Object(out.into_iter().collect())
            }
            Kind::Str(allowed) => {
                let Value::String(s) = value else {
                    return Err(wrong(at, "a string", value));
                };
                if !allowed.is_empty() && !allowed.contains(&s.as_str()) {
                    let list: Vec<String> = allowed.iter().map(|a| format!("`{a}`")).collect();
                    let place = if at.is_empty() {
                        String::new()
                    } else {
                        format!(" at `{at}`")
                    };
                    let message = format!(
                        "Unknown value `{s}`{place}: expected one of {}",
                        list.join(", ")
                    );
                    return Err(error(400, self.code, "invalid_request", &message));
                }
                value.clone()
            }
            Kind::Struct(fields) => {
                let Value::Object(given) = value else {
                    return Err(wrong(at, "an object", value));
                };
                ordered(given, fields)
            }
            Kind::Entries | Kind::Object if value.is_object() => value.clone(),
            Kind::Entries | Kind::Object => return Err(wrong(at, "an object", value)),
            Kind::UInt if value.is_u64() => value.clone(),
            Kind::UInt => return Err(wrong(at, "a positive integer", value)),
            Kind::Bool if value.is_boolean() => value.clone(),
            Kind::Bool => return Err(wrong(at, "a boolean", value)),
        })
    }
}

/// An object's fields in a struct's order (unknown ones last), sets sorted, maps by key.
pub(super) fn ordered(given: &Map<String, Value>, fields: &[&str]) -> Value {
    let mut out = Map::new();
    let known = fields.iter().filter_map(|f| given.get_key_value(*f));
    let others = given.iter().filter(|(k, _)| !fields.contains(&k.as_str()));
    for (k, v) in known.chain(others) {
        let v = match (k.as_str(), v) {
            ("minWordSizeForTypos", Value::Object(o)) => ordered(o, &["oneTypo", "twoTypos"]),
            ("disableOnWords" | "disableOnAttributes", Value::Array(a)) => {
                let mut a = a.clone();
                a.sort_by_key(|x| x.to_string());
                a.dedup();
                Value::Array(a)
            }
            ("sortFacetValuesBy", Value::Object(o)) => {
                let mut entries: Vec<_> = o.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Object(entries.into_iter().collect())
            }
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    Value::Object(out)
}

/// Updates a struct setting field by field: `null` resets a field, an object updates the
/// fields of a nested struct (not of a map such as `sortFacetValuesBy`).
pub(super) fn merge_struct(
    current: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    default: &Value,
) {
    for (k, v) in patch {
        match (v, current.get_mut(k), &default[k]) {
            (Value::Null, _, d) => {
                current.insert(k.clone(), d.clone());
            }
            (Value::Object(p), Some(Value::Object(c)), d @ Value::Object(_))
                if k != "sortFacetValuesBy" =>
            {
                merge_struct(c, p, d);
            }
            _ => {
                current.insert(k.clone(), v.clone());
            }
        }
    }
}

/// A reset (`DELETE` of the settings or of one): unlike a change, it does not create a
/// missing index but fails with `index_not_found`, as Meilisearch's does.
pub(super) fn reset_settings(
    state: &mut NodeState,
    uid: &str,
    patch: Map<String, Value>,
) -> Answer {
    if !state.indexes.contains_key(uid) {
        let details: Map<String, Value> = SETTINGS
            .iter()
            .filter_map(|s| Some((s.name.to_string(), patch.get(s.name)?.clone())))
            .map(|(k, v)| match (k.as_str(), v) {
                ("displayedAttributes" | "searchableAttributes", Value::Null) => (k, json!(["*"])),
                (_, v) => (k, v),
            })
            .collect();
        let message = format!("Index `{uid}` not found.");
        return task(state, Some(uid), "settingsUpdate", move |_| {
            (
                Value::Object(details),
                task_error("index_not_found", &message),
            )
        });
    }
    update_settings(state, uid, patch, "")
}

/// A `settingsUpdate` for the settings of `patch` (by name; `null` resets), creating the index
/// when missing, as Meilisearch does; the details list the settings sent, in Meilisearch's
/// order. `at` prefixes the value's place in errors (`.` for the whole settings object).
pub(super) fn update_settings(
    state: &mut NodeState,
    uid: &str,
    patch: Map<String, Value>,
    at: &str,
) -> Answer {
    if let Some(other) = patch
        .keys()
        .find(|k| !SETTINGS.iter().any(|s| s.name == k.as_str()))
    {
        let names: Vec<String> = SETTINGS.iter().map(|s| format!("`{}`", s.name)).collect();
        let message = format!(
            "Unknown field `{other}`: expected one of {}",
            names.join(", ")
        );
        return error(400, "bad_request", "invalid_request", &message);
    }
    let mut changes: Vec<(&'static Setting, Value)> = Vec::new();
    for s in &SETTINGS {
        if let Some(v) = patch.get(s.name) {
            let place = if at.is_empty() {
                String::new()
            } else {
                format!("{at}{}", s.name)
            };
            match s.check(v, &place) {
                Ok(v) => changes.push((s, v)),
                Err(answer) => return answer,
            }
        }
    }
    let details = Value::Object(
        changes
            .iter()
            .map(|(s, v)| (s.name.to_string(), v.clone()))
            .collect(),
    );
    let uid = uid.to_string();
    task(state, Some(&uid.clone()), "settingsUpdate", move |st| {
        let index = st.indexes.entry(uid).or_default();
        for (s, v) in changes {
            if s.name == "filterableAttributes" {
                index.filterable = if v.is_null() { json!([]) } else { v };
                continue;
            }
            let reset = v.is_null() || (s.kind == Kind::Wildcard && v == json!(["*"]));
            if reset {
                index.settings.remove(s.name);
                continue;
            }
            let merged = match (s.kind, v) {
                (Kind::Struct(_), Value::Object(p)) => {
                    let default = s.default_value();
                    let mut current = match index.settings.get(s.name) {
                        Some(Value::Object(c)) => c.clone(),
                        _ => default.as_object().cloned().unwrap_or_default(),
                    };
                    merge_struct(&mut current, &p, &default);
                    Value::Object(current)
                }
                (Kind::Entries, Value::Object(p)) => {
                    let mut current = index
                        .settings
                        .get(s.name)
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    for (k, e) in p {
                        if e.is_null() {
                            current.remove(&k);
                        } else {
                            current.insert(k, e);
                        }
                    }
                    Value::Object(current)
                }
                (_, v) => v,
            };
            index.settings.insert(s.name.to_string(), merged);
        }
        (details, None)
    })
}

/// The settings a node reports (and an export sends), as `GET /indexes/{uid}/settings`
/// shows them: every setting, its default unless set.
pub fn settings_of(index: &Index) -> Value {
    let mut out = Map::new();
    for s in SETTINGS.iter().filter(|s| s.shown) {
        let mut v = if s.name == "filterableAttributes" {
            match &index.filterable {
                Value::Null => json!([]),
                f => f.clone(),
            }
        } else {
            index
                .settings
                .get(s.name)
                .cloned()
                .unwrap_or_else(|| s.default_value())
        };
        // Facet values are sorted alphabetically unless said otherwise.
        if let Some(Value::Object(by)) = v.pointer_mut("/sortFacetValuesBy") {
            if !by.contains_key("*") {
                let mut entries: Vec<_> = by.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                entries.push(("*".to_string(), json!("alpha")));
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                *by = entries.into_iter().collect();
            }
        }
        out.insert(s.name.to_string(), v);
    }
    Value::Object(out)
}
