//! Resolving the aliases a request names, once, from one table snapshot: the request is
//! rewritten to name real indexes, refused, or (a search of an alias with several targets)
//! turned into a federated search over them.

use serde_json::{Map, Value};

use super::model::AliasTable;
use crate::error::{ErrorType, MeiliError};
use crate::routes::Endpoint;

/// What becomes of a request once its aliases are resolved.
#[derive(Debug, PartialEq)]
pub enum Resolution {
    /// The request names no alias.
    Direct,
    /// The request, with each alias replaced by the index it names.
    Rewritten(Rewrite),
    /// A search of an alias with several targets: a federated search over them.
    Federated {
        alias: String,
        targets: Vec<String>,
    },
    Refused(MeiliError),
}

#[derive(Debug, Default, PartialEq)]
pub struct Rewrite {
    /// The path naming the real index, for index routes.
    pub path: Option<String>,
    pub index: Option<String>,
    /// A multi-search body naming real indexes.
    pub body: Option<Vec<u8>>,
    /// Results of a plain multi-search that echo an alias's name, by position.
    pub echo: Vec<(usize, String)>,
    /// The aliases resolved.
    pub aliases: Vec<String>,
}

/// How an index route uses its index.
enum Use {
    Search,
    Read,
    Write,
    /// Changes the index itself: an alias is not an index.
    Index,
}

fn use_of(endpoint: Endpoint) -> Use {
    use Endpoint as E;
    match endpoint {
        E::Search => Use::Search,
        E::DocumentsReplace
        | E::DocumentsUpdate
        | E::DocumentsDeleteAll
        | E::DocumentsDeleteBatch
        | E::DocumentsDeleteByFilter
        | E::DocumentsEdit
        | E::DocumentDelete
        | E::SettingsUpdate
        | E::SettingsReset
        | E::SettingUpdate
        | E::SettingReset => Use::Write,
        E::IndexUpdate | E::IndexDelete | E::IndexCompact => Use::Index,
        _ => Use::Read,
    }
}

/// Resolves the aliases of a request to `endpoint` at `path` (whose index segment is
/// `index`) with `body`.
pub fn resolve(
    table: &AliasTable,
    endpoint: Endpoint,
    index: Option<&str>,
    path: &str,
    body: &[u8],
) -> Resolution {
    if table.is_empty() {
        return Resolution::Direct;
    }
    match endpoint {
        Endpoint::MultiSearch => return multi_search(table, body),
        Endpoint::IndexCreate => return creates(table, body, "uid"),
        Endpoint::SwapIndexes => return swaps(table, body),
        Endpoint::IndexUpdate if index.is_some_and(|i| table.get(i).is_none()) => {
            return creates(table, body, "uid")
        }
        _ => {}
    }
    let Some(alias) = index.and_then(|i| table.get(i)) else {
        return Resolution::Direct;
    };
    let target = match (use_of(endpoint), alias.targets.as_slice()) {
        (Use::Index, _) => {
            return Resolution::Refused(MeiliError::new(
                409,
                "miroir_index_is_alias",
                ErrorType::InvalidRequest,
                format!(
                    "`{}` is an alias, not an index: change or delete the index by its own uid, or the alias with `/_miroir/aliases/{}`.",
                    alias.name, alias.name
                ),
            ))
        }
        (Use::Search, [_, _, ..]) => {
            return Resolution::Federated {
                alias: alias.name.clone(),
                targets: alias.targets.clone(),
            }
        }
        (Use::Write, _) => alias.write_target(),
        (Use::Search | Use::Read, [one]) => Some(one.as_str()),
        (Use::Search | Use::Read, _) => alias.write_target(),
    };
    let Some(target) = target else {
        return Resolution::Refused(ambiguous(&alias.name, &alias.targets));
    };
    Resolution::Rewritten(Rewrite {
        path: Some(with_index(path, target)),
        index: Some(target.to_string()),
        aliases: vec![alias.name.clone()],
        ..Rewrite::default()
    })
}

fn ambiguous(name: &str, targets: &[String]) -> MeiliError {
    MeiliError::new(
        409,
        "miroir_alias_ambiguous",
        ErrorType::InvalidRequest,
        format!(
            "Alias `{name}` targets several indexes ({}) and names no `writeIndex`: only searches can use it. Name a write index with `PATCH /_miroir/aliases/{name}`, or use an index uid.",
            targets.join(", ")
        ),
    )
}

fn is_alias_error(name: &str) -> MeiliError {
    MeiliError::new(
        409,
        "miroir_index_is_alias",
        ErrorType::InvalidRequest,
        format!("`{name}` is the name of an alias: an index cannot take it. Delete the alias first, or choose another uid."),
    )
}

/// `path` with its index segment (the second) replaced by `index`.
pub fn with_index(path: &str, index: &str) -> String {
    let mut out = String::with_capacity(path.len() + index.len());
    for (i, seg) in path.split('/').filter(|s| !s.is_empty()).enumerate() {
        out.push('/');
        out.push_str(if i == 1 { index } else { seg });
    }
    out
}

/// An index created (or renamed, with `field` the new uid) with an alias's name is refused.
fn creates(table: &AliasTable, body: &[u8], field: &str) -> Resolution {
    let uid = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|b| b.get(field).and_then(Value::as_str).map(str::to_string));
    match uid {
        Some(uid) if table.get(&uid).is_some() => Resolution::Refused(is_alias_error(&uid)),
        _ => Resolution::Direct,
    }
}

/// A swap (or a rename by swap) naming an alias is refused: swaps are of indexes.
fn swaps(table: &AliasTable, body: &[u8]) -> Resolution {
    let Ok(Value::Array(swaps)) = serde_json::from_slice::<Value>(body) else {
        return Resolution::Direct;
    };
    let named = swaps
        .iter()
        .filter_map(|s| s.get("indexes").and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .find(|uid| table.get(uid).is_some());
    match named {
        Some(uid) => Resolution::Refused(is_alias_error(uid)),
        None => Resolution::Direct,
    }
}

/// Each query's `indexUid` resolved; in a federated search, an alias with several targets
/// becomes one query per target, and `facetsByIndex` follows.
fn multi_search(table: &AliasTable, body: &[u8]) -> Resolution {
    let Ok(Value::Object(mut b)) = serde_json::from_slice::<Value>(body) else {
        return Resolution::Direct;
    };
    let federated = b.get("federation").is_some_and(|f| !f.is_null());
    let Some(Value::Array(queries)) = b.get_mut("queries") else {
        return Resolution::Direct;
    };
    let mut rewrite = Rewrite::default();
    let mut out = Vec::with_capacity(queries.len());
    for (position, query) in queries.drain(..).enumerate() {
        let alias = query
            .get("indexUid")
            .and_then(Value::as_str)
            .and_then(|uid| table.get(uid));
        let Some(alias) = alias else {
            out.push(query);
            continue;
        };
        rewrite.aliases.push(alias.name.clone());
        match alias.targets.as_slice() {
            [one] => {
                out.push(with_uid(query, one));
                if !federated {
                    rewrite.echo.push((position, alias.name.clone()));
                }
            }
            many if federated => out.extend(many.iter().map(|t| with_uid(query.clone(), t))),
            many => {
                return Resolution::Refused(MeiliError::new(
                    400,
                    "miroir_alias_ambiguous",
                    ErrorType::InvalidRequest,
                    format!(
                        "Inside `.queries[{position}]`: alias `{}` targets several indexes ({}): search it alone, or in a federated multi-search, which merges them.",
                        alias.name,
                        many.join(", ")
                    ),
                ))
            }
        }
    }
    b.insert("queries".into(), Value::Array(out));
    let by_index = b
        .get_mut("federation")
        .and_then(|f| f.get_mut("facetsByIndex"))
        .and_then(Value::as_object_mut);
    if let Some(by_index) = by_index {
        let named: Vec<String> = by_index
            .keys()
            .filter(|k| table.get(k).is_some())
            .cloned()
            .collect();
        for name in named {
            let facets = by_index.remove(&name).unwrap_or(Value::Null);
            for t in table
                .get(&name)
                .map(|a| a.targets.clone())
                .unwrap_or_default()
            {
                by_index.insert(t, facets.clone());
            }
            rewrite.aliases.push(name);
        }
    }
    if rewrite.aliases.is_empty() {
        return Resolution::Direct;
    }
    rewrite.body = Some(serde_json::to_vec(&b).unwrap_or_default());
    Resolution::Rewritten(rewrite)
}

fn with_uid(mut query: Value, uid: &str) -> Value {
    if let Some(q) = query.as_object_mut() {
        q.insert("indexUid".into(), Value::from(uid));
    }
    query
}

/// A plain multi-search answer with the results at `echo` naming their alias, as if the
/// index were called by it.
pub fn echo_aliases(answer: &[u8], echo: &[(usize, String)]) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(answer).ok()?;
    let results = v.get_mut("results")?.as_array_mut()?;
    for (position, alias) in echo {
        if let Some(r) = results.get_mut(*position).and_then(Value::as_object_mut) {
            r.insert("indexUid".into(), Value::from(alias.as_str()));
        }
    }
    serde_json::to_vec(&v).ok()
}

/// Search parameters that belong to the federation, not to each query.
const FEDERATION_PARAMS: &[&str] = &["limit", "offset", "page", "hitsPerPage"];

/// The federated multi-search that searches `targets` as one index with `query` (a search
/// body): the window and facets go to the federation, merged over the targets.
pub fn federated_body(query: &Map<String, Value>, targets: &[String]) -> Map<String, Value> {
    let mut federation = Map::new();
    let mut each = query.clone();
    for key in FEDERATION_PARAMS {
        if let Some(v) = each.remove(*key) {
            federation.insert((*key).to_string(), v);
        }
    }
    if let Some(facets) = each.remove("facets") {
        let by_index: Map<String, Value> = targets
            .iter()
            .map(|t| (t.clone(), facets.clone()))
            .collect();
        federation.insert("facetsByIndex".into(), Value::Object(by_index));
        federation.insert("mergeFacets".into(), Value::Object(Map::new()));
    }
    let queries = targets
        .iter()
        .map(|t| {
            let mut q = each.clone();
            q.insert("indexUid".into(), Value::from(t.as_str()));
            Value::Object(q)
        })
        .collect();
    let mut body = Map::new();
    body.insert("federation".into(), Value::Object(federation));
    body.insert("queries".into(), Value::Array(queries));
    body
}

/// The indexes a request reads, once resolved: the index of an index route, or a
/// multi-search's.
pub fn read_indexes(index: Option<&str>, multi_search_body: Option<&[u8]>) -> Vec<String> {
    if let Some(i) = index {
        return vec![i.to_string()];
    }
    multi_search_body
        .and_then(crate::cache::multi_search_indexes)
        .unwrap_or_default()
}
