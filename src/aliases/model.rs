//! What an alias is, and the table of them the state store keeps as one value: a change is
//! one compare-and-set of the whole table, so a flip is atomic on every backend.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{ErrorType, MeiliError};

/// A stable name for one index, or for several read together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alias {
    pub name: String,
    /// Read together, as one federated search over them.
    pub targets: Vec<String>,
    /// The index writes through the alias go to; with one target, that target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_index: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Past flips, newest first, at most `aliases.history_retention`.
    #[serde(default)]
    pub history: Vec<Flip>,
}

/// One change of an alias's targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Flip {
    pub at: String,
    pub from: Vec<String>,
    pub to: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_write_index: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_write_index: Option<String>,
}

impl Alias {
    /// The index a write through the alias goes to, if one is unambiguous.
    pub fn write_target(&self) -> Option<&str> {
        match (&self.write_index, self.targets.as_slice()) {
            (Some(w), _) => Some(w),
            (None, [only]) => Some(only),
            _ => None,
        }
    }

    /// The alias as the admin API shows it.
    pub fn view(&self) -> Value {
        json!({
            "name": self.name,
            "targets": self.targets,
            "writeIndex": self.write_target(),
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "history": self.history,
        })
    }
}

/// Every alias, by name, the swaps under way through any gateway, and the store's version
/// of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AliasTable {
    pub version: u64,
    pub aliases: BTreeMap<String, Alias>,
    pub swaps: Vec<SwapMark>,
}

/// A swap or rename under way through one gateway: every gateway holds the readers of its
/// indexes until it is gone, or until `until_ms` if its gateway stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SwapMark {
    pub id: String,
    pub gateway: String,
    pub indexes: Vec<String>,
    /// Milliseconds since the Unix epoch.
    pub until_ms: u64,
}

/// How the table is stored.
#[derive(Default, Serialize, Deserialize)]
struct Stored {
    aliases: BTreeMap<String, Alias>,
    #[serde(default)]
    swaps: Vec<SwapMark>,
}

impl AliasTable {
    /// The table a store value holds (an empty or unreadable value is an empty table: the
    /// store's version still guards the next change).
    pub fn decode(version: u64, json: &[u8]) -> AliasTable {
        let stored = if json.is_empty() {
            Stored::default()
        } else {
            serde_json::from_slice(json).unwrap_or_else(|e| {
                log::error!("aliases: the stored table is unreadable ({e}); starting empty");
                Stored::default()
            })
        };
        AliasTable {
            version,
            aliases: stored.aliases,
            swaps: stored.swaps,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let stored = Stored {
            aliases: self.aliases.clone(),
            swaps: self.swaps.clone(),
        };
        serde_json::to_vec(&stored).unwrap_or_default()
    }

    pub fn get(&self, name: &str) -> Option<&Alias> {
        self.aliases.get(name)
    }

    /// Whether no request can name an alias (swaps under way do not count).
    pub fn is_empty(&self) -> bool {
        self.aliases.is_empty()
    }
}

/// What a client asks an alias to point at (create or flip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasSpec {
    pub targets: Vec<String>,
    pub write_index: Option<String>,
}

impl AliasSpec {
    /// Reads `{"targets": [...] | "target": "...", "writeIndex": "..."}`.
    pub fn parse(body: &Value) -> Result<AliasSpec, MeiliError> {
        let Some(obj) = body.as_object() else {
            return Err(invalid("The body must be a JSON object."));
        };
        for key in obj.keys() {
            if !matches!(key.as_str(), "name" | "target" | "targets" | "writeIndex") {
                return Err(invalid(format!(
                    "Unknown field `{key}`: expected one of `name`, `targets`, `target`, `writeIndex`."
                )));
            }
        }
        let targets = match (obj.get("targets"), obj.get("target")) {
            (Some(_), Some(_)) => return Err(invalid("Give `targets` or `target`, not both.")),
            (Some(Value::Array(list)), None) => list
                .iter()
                .map(|t| t.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| invalid("`targets` must be an array of index uids."))?,
            (None, Some(Value::String(t))) => vec![t.clone()],
            (None, None) => return Err(invalid("Missing field `targets`.")),
            _ => return Err(invalid("`targets` must be an array of index uids.")),
        };
        if targets.is_empty() {
            return Err(invalid("`targets` must name at least one index."));
        }
        for t in &targets {
            check_uid(t, "target")?;
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = targets.iter().find(|t| !seen.insert(*t)) {
            return Err(invalid(format!("`{dup}` is named twice in `targets`.")));
        }
        let write_index = match obj.get("writeIndex") {
            None | Some(Value::Null) => None,
            Some(Value::String(w)) if targets.contains(w) => Some(w.clone()),
            Some(Value::String(w)) => {
                return Err(invalid(format!(
                    "`writeIndex` `{w}` must be one of the alias's `targets`."
                )))
            }
            Some(_) => return Err(invalid("`writeIndex` must be an index uid or null.")),
        };
        Ok(AliasSpec {
            targets,
            write_index,
        })
    }
}

/// Checks `uid` the way Meilisearch checks an index uid (aliases share that namespace).
pub fn check_uid(uid: &str, what: &str) -> Result<(), MeiliError> {
    let ok = !uid.is_empty()
        && uid.len() <= 400
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "`{uid}` is not a valid {what}. It can be an integer or a string containing only alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 400 bytes."
        )))
    }
}

pub fn invalid(message: impl Into<String>) -> MeiliError {
    MeiliError::new(
        400,
        "miroir_invalid_alias",
        ErrorType::InvalidRequest,
        message,
    )
}

pub fn not_found(name: &str) -> MeiliError {
    MeiliError::new(
        404,
        "miroir_alias_not_found",
        ErrorType::InvalidRequest,
        format!("Alias `{name}` not found."),
    )
}

/// Applies a change to a table: a create (`existing` is `None`) or a flip; the flip recorded
/// in the history, which keeps `retention` entries.
pub fn apply(
    table: &mut AliasTable,
    name: &str,
    spec: AliasSpec,
    create: bool,
    retention: usize,
    now: &str,
) -> Result<Alias, MeiliError> {
    for t in &spec.targets {
        if table.aliases.contains_key(t) {
            return Err(invalid(format!(
                "`{t}` is an alias: an alias targets indexes, not other aliases."
            )));
        }
    }
    let alias = match (table.aliases.get_mut(name), create) {
        (Some(_), true) => {
            return Err(MeiliError::new(
                409,
                "miroir_alias_already_exists",
                ErrorType::InvalidRequest,
                format!(
                    "Alias `{name}` already exists: flip it with `PATCH /_miroir/aliases/{name}`."
                ),
            ))
        }
        (None, false) => return Err(not_found(name)),
        (None, true) => {
            let alias = Alias {
                name: name.to_string(),
                targets: spec.targets,
                write_index: spec.write_index,
                created_at: now.to_string(),
                updated_at: now.to_string(),
                history: Vec::new(),
            };
            table.aliases.insert(name.to_string(), alias.clone());
            return Ok(alias);
        }
        (Some(alias), false) => alias,
    };
    let flip = Flip {
        at: now.to_string(),
        from: std::mem::replace(&mut alias.targets, spec.targets),
        to: Vec::new(),
        from_write_index: std::mem::replace(&mut alias.write_index, spec.write_index),
        to_write_index: None,
    };
    let flip = Flip {
        to: alias.targets.clone(),
        to_write_index: alias.write_index.clone(),
        ..flip
    };
    alias.updated_at = now.to_string();
    alias.history.insert(0, flip);
    alias.history.truncate(retention);
    Ok(alias.clone())
}
