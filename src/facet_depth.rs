//! Facet counts exact beyond `maxValuesPerFacet`. Each shard returns only its own top values
//! of a facet, so a value just outside one shard's top list loses that shard's count. As
//! Elasticsearch does with `shard_size`, nodes keep more values than the client asked for:
//! the nodes' `faceting.maxValuesPerFacet` is the client's times a multiple (at least a
//! floor), the client's own value is kept by the gateway and is what settings reads, task
//! details and the merged answer's truncation show. Plain code; the gateway stores the
//! client's values ([`crate::tasks::TaskService::client_facet_values`]).

use serde_json::{Map, Value};

/// Meilisearch's default `maxValuesPerFacet`.
pub const DEFAULT: u64 = 100;

/// How much deeper than the client the nodes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FacetDepth {
    pub multiple: u64,
    pub floor: u64,
}

impl Default for FacetDepth {
    fn default() -> Self {
        FacetDepth {
            multiple: 4,
            floor: 400,
        }
    }
}

/// What a settings write says of `maxValuesPerFacet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Set to this value.
    Set(u64),
    /// Back to the default (`null`).
    Reset,
}

impl FacetDepth {
    /// The nodes' value for a client's.
    pub fn node_value(&self, client: u64) -> u64 {
        client.saturating_mul(self.multiple).max(self.floor)
    }

    /// Rewrites a `faceting` object for the nodes; what it changes for the client.
    pub fn rewrite_faceting(&self, faceting: &mut Map<String, Value>) -> Option<Change> {
        let change = match faceting.get("maxValuesPerFacet")? {
            Value::Null => Change::Reset,
            v => Change::Set(v.as_u64()?),
        };
        let client = match change {
            Change::Set(v) => v,
            Change::Reset => DEFAULT,
        };
        faceting.insert(
            "maxValuesPerFacet".into(),
            Value::from(self.node_value(client)),
        );
        Some(change)
    }

    /// Rewrites a whole settings object (`PATCH /settings`) for the nodes.
    pub fn rewrite_settings(&self, settings: &mut Map<String, Value>) -> Option<Change> {
        match settings.get_mut("faceting")? {
            Value::Object(f) => self.rewrite_faceting(f),
            // `faceting: null` resets it, whose default the nodes must not get.
            Value::Null => {
                let mut f = Map::new();
                f.insert(
                    "maxValuesPerFacet".into(),
                    Value::from(self.node_value(DEFAULT)),
                );
                settings.insert("faceting".into(), Value::Object(f));
                Some(Change::Reset)
            }
            _ => None,
        }
    }
}

/// Shows the client's value in a node's `faceting` object.
pub fn show(faceting: &mut Value, client: u64) {
    if let Some(f) = faceting.as_object_mut() {
        if f.contains_key("maxValuesPerFacet") {
            f.insert("maxValuesPerFacet".into(), Value::from(client));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nodes_go_deeper_than_the_client() {
        let d = FacetDepth::default();
        assert_eq!(d.node_value(10), 400);
        assert_eq!(d.node_value(100), 400);
        assert_eq!(d.node_value(1000), 4000);
        let mut s = json!({"faceting": {"maxValuesPerFacet": 10, "sortFacetValuesBy": {"*": "count"}}, "distinctAttribute": "x"});
        let change = d.rewrite_settings(s.as_object_mut().unwrap());
        assert_eq!(change, Some(Change::Set(10)));
        assert_eq!(
            s,
            json!({"faceting": {"maxValuesPerFacet": 400, "sortFacetValuesBy": {"*": "count"}}, "distinctAttribute": "x"})
        );
        let mut s = json!({"faceting": null});
        assert_eq!(
            d.rewrite_settings(s.as_object_mut().unwrap()),
            Some(Change::Reset)
        );
        assert_eq!(s, json!({"faceting": {"maxValuesPerFacet": 400}}));
        let mut f = json!({"maxValuesPerFacet": null});
        assert_eq!(
            d.rewrite_faceting(f.as_object_mut().unwrap()),
            Some(Change::Reset)
        );
        // Nothing about it, or a value a node refuses: left for the node to judge.
        assert_eq!(
            d.rewrite_settings(json!({"x": 1}).as_object_mut().unwrap()),
            None
        );
        let mut bad = json!({"maxValuesPerFacet": "ten"});
        assert_eq!(d.rewrite_faceting(bad.as_object_mut().unwrap()), None);
        assert_eq!(bad, json!({"maxValuesPerFacet": "ten"}));
        let mut shown = json!({"maxValuesPerFacet": 400, "sortFacetValuesBy": {}});
        show(&mut shown, 10);
        assert_eq!(
            shown,
            json!({"maxValuesPerFacet": 10, "sortFacetValuesBy": {}})
        );
    }
}
