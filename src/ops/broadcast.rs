//! Writes every node must apply: index lifecycle, settings, deletions by filter or in bulk,
//! keys, and the rest of the broadcast class. Settings keep the shard tag filterable.

use bytes::Bytes;
use serde_json::{json, Value};

use super::write::{execute, Send, WritePlan};
use super::{relay, unreachable, Request, Services};
use crate::cluster::Cluster;
use crate::error::MeiliError;
use crate::facet_depth::{self, Change};
use crate::respond::Reply;
use crate::routes::Endpoint;
use crate::shard_tag::{self, and_filter, guard, settings};

/// The request each node gets, whether the tag must be made filterable afterwards, and the
/// details the client's own request would show where the request sent differs.
///
/// A reset of `filterableAttributes` is sent as the tag alone: one task per node, as on a
/// node, rather than a reset and then the tag.
fn rewritten(req: &Request<'_>) -> (crate::transport::NodeRequest, bool, Option<Value>) {
    use Endpoint as E;
    let setting = req.route.param.as_deref();
    let filterable_reset = || Some(json!({"filterableAttributes": null}));
    match (req.route.endpoint, setting) {
        (E::SettingsUpdate, _) => {
            let details = body_has_filterable_reset(&req.body)
                .then(filterable_reset)
                .flatten();
            match settings::patch_body_with_tag(&req.body) {
                Some(body) => (with_body(req, body), false, details),
                None => (req.forward(), false, None),
            }
        }
        // Resetting all settings resets the tag too: put it back.
        (E::SettingsReset, _) => (req.forward(), true, None),
        (E::SettingUpdate, Some("filterable-attributes")) => {
            match serde_json::from_slice::<Value>(&req.body) {
                Ok(v @ (Value::Array(_) | Value::Null)) => {
                    let body = serde_json::to_vec(&settings::with_tag(&v)).unwrap_or_default();
                    let details = v.is_null().then(filterable_reset).flatten();
                    (with_body(req, body), false, details)
                }
                _ => (req.forward(), false, None),
            }
        }
        (E::SettingReset, Some("filterable-attributes")) => {
            let mut put = with_body(
                req,
                settings::with_tag(&Value::Null).to_string().into_bytes(),
            );
            put.method = http::Method::PUT;
            put.headers
                .retain(|(name, _)| name != http::header::CONTENT_TYPE);
            put.headers.push((
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            ));
            (put, false, filterable_reset())
        }
        (E::IndexCreate, _) => (req.forward(), true, None),
        (E::DocumentsDeleteByFilter, _) => match serde_json::from_slice::<Value>(&req.body) {
            Ok(Value::Object(mut body)) if guard::uses_tag(&body) => {
                guard::rename_in_query(&mut body);
                let body = serde_json::to_vec(&body).unwrap_or_default();
                (with_body(req, body), false, None)
            }
            _ => (req.forward(), false, None),
        },
        _ => (req.forward(), false, None),
    }
}

fn body_sets_filterable(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .is_ok_and(|v| v.get("filterableAttributes").is_some_and(Value::is_array))
}

fn body_has_filterable_reset(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .is_ok_and(|v| v.get("filterableAttributes") == Some(&Value::Null))
}

fn with_body(req: &Request<'_>, body: Vec<u8>) -> crate::transport::NodeRequest {
    req.to_node(
        req.method.clone(),
        req.target(),
        req.headers.get(http::header::CONTENT_TYPE),
        Bytes::from(body),
    )
}

/// The index a broadcast creates or changes, for the internal tag task and the cache.
fn target_index(req: &Request<'_>) -> Option<String> {
    match req.route.endpoint {
        Endpoint::IndexCreate => serde_json::from_slice::<Value>(&req.body)
            .ok()
            .and_then(|v| v["uid"].as_str().map(str::to_string)),
        _ => req.route.index.clone(),
    }
}

/// Endpoints that answer synchronously (not with a task): every node applies them, the first
/// answer is the client's.
fn synchronous(endpoint: Endpoint) -> bool {
    matches!(
        endpoint,
        Endpoint::ExperimentalUpdate | Endpoint::WebhookWrite
    )
}

/// Sends the same write to every node.
pub async fn broadcast(cluster: &Cluster<'_>, services: &Services, req: &Request<'_>) -> Reply {
    let topology = cluster.topology;
    let endpoint = req.route.endpoint;
    match endpoint {
        Endpoint::IndexDelete | Endpoint::IndexUpdate => {
            if let Some(i) = &req.route.index {
                services.indexes.forget(i);
            }
        }
        Endpoint::SwapIndexes => services.indexes.forget_all(),
        Endpoint::SettingsUpdate
        | Endpoint::SettingsReset
        | Endpoint::SettingUpdate
        | Endpoint::SettingReset => {
            if let Some(i) = &req.route.index {
                services.indexes.forget_settings(i);
            }
        }
        _ => {}
    }
    if !topology.recorders.is_empty() {
        let refused = match endpoint {
            Endpoint::DocumentsEdit => Some("Editing documents with a function"),
            Endpoint::SwapIndexes => Some("Swapping indexes"),
            Endpoint::IndexDelete => Some("Deleting an index"),
            Endpoint::IndexUpdate if renames(&req.body) => Some("Renaming an index"),
            _ => None,
        };
        if let Some(what) = refused {
            let mut reply = Reply::error(&MeiliError::shards_moving(what));
            reply.headers.push((
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("10"),
            ));
            return reply;
        }
    }
    if matches!(
        endpoint,
        Endpoint::KeyCreate | Endpoint::KeyUpdate | Endpoint::KeyDelete
    ) {
        return super::key_writes::key_write(cluster, services, req).await;
    }
    if synchronous(endpoint) {
        let request = req.forward();
        let sends = topology
            .write_nodes()
            .into_iter()
            .map(|n| (n, request.clone()))
            .collect();
        let results = cluster.send_each(sends).await;
        return match results.iter().find_map(|(_, r)| r.as_ref().ok()) {
            Some(resp) => relay(resp),
            None => unreachable("every node failed"),
        };
    }
    let (mut request, mut tag_after, mut details) = rewritten(req);
    // Creating an index that exists fails on every node; the tag follow-up would still
    // replace the existing index's filterable attributes with the tag alone.
    if endpoint == Endpoint::IndexCreate {
        if let Some(index) = target_index(req) {
            if matches!(services.indexes.lookup(cluster, &index).await, Ok(Some(_))) {
                tag_after = false;
            }
        }
    }
    // A reset of a missing index's setting fails (`index_not_found`) where the tag alone
    // would create the index: the reset goes as is.
    if (endpoint, req.route.param.as_deref())
        == (Endpoint::SettingReset, Some("filterable-attributes"))
    {
        if let Some(index) = &req.route.index {
            if matches!(services.indexes.lookup(cluster, index).await, Ok(None)) {
                (request, details) = (req.forward(), None);
            }
        }
    }
    // A reset of every setting goes as one task per node that also keeps the tag and the
    // nodes' deeper facet values, as a node does it in one; the details show the reset. A
    // missing index gets the reset as is: it fails there (`index_not_found`) as on a node,
    // where the `PATCH` would create it.
    let mut reset_in_one = false;
    if endpoint == Endpoint::SettingsReset {
        if let Some(index) = &req.route.index {
            match services.indexes.lookup(cluster, index).await {
                Ok(Some(_)) => {
                    let deep = services.facet_depth.node_value(facet_depth::DEFAULT);
                    let json = http::HeaderValue::from_static("application/json");
                    let body = Bytes::from(settings::reset_all(deep));
                    request = req.to_node(http::Method::PATCH, req.target(), Some(&json), body);
                    details = Some(json!({"filterableAttributes": null, "faceting": null}));
                    (tag_after, reset_in_one) = (false, true);
                }
                // No follow-up either: it would create the index.
                Ok(None) => (tag_after, reset_in_one) = (false, true),
                Err(_) => {}
            }
        }
    }
    // The nodes keep more facet values than the client asked for; the client's value is
    // the gateway's to remember and show.
    let depth = services.facet_depth;
    let mut facet_change = None;
    match (endpoint, req.route.param.as_deref()) {
        (Endpoint::SettingsUpdate, _) => {
            if let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(&request.body) {
                facet_change = depth.rewrite_settings(&mut body);
                if facet_change.is_some() {
                    let client: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                    let d = details.get_or_insert_with(|| json!({}));
                    d["faceting"] = client["faceting"].clone();
                    request.body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
                }
            }
        }
        (Endpoint::SettingUpdate, Some("faceting")) => {
            if let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(&request.body) {
                facet_change = depth.rewrite_faceting(&mut body);
                if facet_change.is_some() {
                    let client: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                    details = Some(json!({"faceting": client}));
                    request.body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
                }
            }
        }
        (Endpoint::SettingsReset, _) | (Endpoint::SettingReset, Some("faceting")) => {
            facet_change = Some(Change::Reset);
        }
        _ => {}
    }
    // A settings write into a missing index creates it: its one task per node carries the
    // client's settings, the tag and the nodes' deeper facet values (what the gateway adds
    // is hidden from the task's details), rather than a second task after it.
    let mut creates_index = false;
    if endpoint == Endpoint::SettingsUpdate {
        if let Some(index) = &req.route.index {
            if matches!(services.indexes.lookup(cluster, index).await, Ok(None)) {
                if let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(&request.body)
                {
                    let mut hidden = Vec::new();
                    if !body.contains_key("filterableAttributes") {
                        body.insert(
                            "filterableAttributes".into(),
                            settings::with_tag(&Value::Null),
                        );
                        hidden.push("filterableAttributes");
                    }
                    if facet_change.is_none() {
                        let deep = depth.node_value(facet_depth::DEFAULT);
                        body.insert("faceting".into(), json!({"maxValuesPerFacet": deep}));
                        hidden.push("faceting");
                    }
                    request.body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
                    if !hidden.is_empty() {
                        let d = details.get_or_insert_with(|| json!({}));
                        d[crate::tasks::HIDDEN_DETAILS] = json!(hidden);
                    }
                    creates_index = true;
                }
            }
        }
    }
    // A settings write creates a missing index: the new index needs the tag too.
    let carries_tag = creates_index
        || match (endpoint, req.route.param.as_deref()) {
            (Endpoint::SettingsUpdate, _) => {
                body_sets_filterable(&req.body) || body_has_filterable_reset(&req.body)
            }
            (Endpoint::SettingUpdate, Some("filterable-attributes")) => {
                serde_json::from_slice::<Value>(&req.body)
                    .is_ok_and(|v| v.is_array() || v.is_null())
            }
            _ => false,
        };
    if matches!(endpoint, Endpoint::SettingsUpdate | Endpoint::SettingUpdate)
        && !tag_after
        && !carries_tag
    {
        if let Some(index) = &req.route.index {
            tag_after = matches!(services.indexes.lookup(cluster, index).await, Ok(None));
        }
    }
    let mut sends: Vec<Send> = topology
        .write_nodes()
        .into_iter()
        .map(|node| Send {
            node,
            request: request.clone(),
            internal: false,
        })
        .collect();
    let index = target_index(req);
    // A deletion of many documents also goes to the record of each moving shard, narrowed
    // to that shard, so its next owner applies it after the copy.
    if matches!(
        endpoint,
        Endpoint::DocumentsDeleteAll | Endpoint::DocumentsDeleteByFilter
    ) {
        sends.extend(recorded_deletions(cluster, req));
    }
    // What the client's `maxValuesPerFacet` is after this write, recorded before any node
    // sees it; a reset, or a new index, gets the nodes' deeper value after the write.
    let new_index = tag_after
        && (endpoint == Endpoint::IndexCreate
            || matches!(endpoint, Endpoint::SettingsUpdate | Endpoint::SettingUpdate));
    let depth_after = (matches!(facet_change, Some(Change::Reset)) || new_index) && !reset_in_one;
    if let Some(index) = &index {
        let recorded = services.tasks.client_facet_values(index);
        let client = match facet_change {
            Some(Change::Set(v)) => Some(v),
            Some(Change::Reset) => Some(facet_depth::DEFAULT),
            None if new_index || creates_index => recorded.or(Some(facet_depth::DEFAULT)),
            None => recorded,
        };
        if client != recorded {
            if let Err(e) = services.tasks.set_client_facet_values(index, client) {
                return super::store_failure(&e);
            }
        }
        for node in topology.write_nodes() {
            if tag_after {
                sends.push(Send {
                    node,
                    request: cluster.own_request(settings::keep_filterable(index)),
                    internal: true,
                });
            }
            if depth_after {
                let value = depth.node_value(client.unwrap_or(facet_depth::DEFAULT));
                sends.push(Send {
                    node,
                    request: cluster.own_request(facet_depth_request(index, value)),
                    internal: true,
                });
            }
        }
    }
    if endpoint == Endpoint::IndexDelete {
        if let Some(index) = &req.route.index {
            let _ = services.tasks.set_client_facet_values(index, None);
        }
    }
    let plan = WritePlan {
        sends,
        shards: (0..topology.shards).collect(),
        kind: "settingsUpdate",
        index_uid: req.route.index.clone(),
        details,
        copies: topology.copies() as u32,
    };
    execute(cluster, services, req, plan).await
}

/// The internal request giving the nodes their (deeper) `maxValuesPerFacet`.
/// Whether a `PATCH /indexes/{uid}` body renames the index.
fn renames(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| !v["uid"].is_null())
}

/// The deletion of `req` for each moving shard's recorder, limited to that shard.
fn recorded_deletions(cluster: &Cluster<'_>, req: &Request<'_>) -> Vec<Send> {
    let topology = cluster.topology;
    let Some(index) = &req.route.index else {
        return Vec::new();
    };
    let client: Option<Value> = match req.route.endpoint {
        Endpoint::DocumentsDeleteByFilter => {
            match serde_json::from_slice::<Value>(&req.body) {
                Ok(v) if v.get("filter").is_some() => Some(v["filter"].clone()),
                // A body a node refuses deletes nothing: nothing to record.
                _ => return Vec::new(),
            }
        }
        _ => None,
    };
    let ct = http::HeaderValue::from_static("application/json");
    (0..topology.recorders.len())
        .map(|i| {
            let r = &topology.recorders[i];
            let filter = and_filter(client.as_ref(), &shard_tag::filter(&[r.shard]));
            let body = serde_json::to_vec(&json!({ "filter": filter })).unwrap_or_default();
            let request = req.to_node(
                http::Method::POST,
                format!("/indexes/{index}/documents/delete"),
                Some(&ct),
                Bytes::from(body),
            );
            Send {
                node: topology.nodes.len() + i,
                request,
                internal: false,
            }
        })
        .collect()
}

pub(super) fn facet_depth_request(index: &str, value: u64) -> crate::transport::NodeRequest {
    crate::transport::NodeRequest {
        method: http::Method::PATCH,
        path: format!("/indexes/{index}/settings/faceting"),
        headers: vec![(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        )],
        body: Bytes::from(json!({"maxValuesPerFacet": value}).to_string()),
    }
}
