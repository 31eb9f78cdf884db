//! Writes every node must apply: index lifecycle, settings, deletions by filter or in bulk,
//! keys, and the rest of the broadcast class. Settings keep the gateway's fields (the shard tag
//! filterable, the insertion order sortable).

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

/// The request each node gets, whether the gateway's fields must be put back afterwards, and
/// the details the client's own request would show where the request sent differs.
///
/// A reset of `filterableAttributes` (`sortableAttributes`) is sent as the gateway's field
/// alone: one task per node, as on a node, rather than a reset and then the field.
fn rewritten(req: &Request<'_>) -> (crate::transport::NodeRequest, bool, Option<Value>) {
    use Endpoint as E;
    let kept = req
        .route
        .param
        .as_deref()
        .and_then(settings::kept_setting_of_route);
    let reset_details = |settings: Vec<&str>| {
        let d: serde_json::Map<String, Value> = settings
            .iter()
            .map(|s| (s.to_string(), Value::Null))
            .collect();
        (!d.is_empty()).then_some(Value::Object(d))
    };
    match (req.route.endpoint, kept) {
        (E::SettingsUpdate, _) => {
            let details = reset_details(kept_resets(&req.body));
            match settings::patch_body_with_tag(&req.body) {
                Some(body) => (with_body(req, body), false, details),
                None => (req.forward(), false, None),
            }
        }
        // Resetting all settings resets the gateway's fields too: put them back.
        (E::SettingsReset, _) => (req.forward(), true, None),
        (E::SettingUpdate, Some(setting)) => match serde_json::from_slice::<Value>(&req.body) {
            Ok(v @ (Value::Array(_) | Value::Null)) => {
                let body =
                    serde_json::to_vec(&settings::with_kept(setting, &v)).unwrap_or_default();
                let details = reset_details(if v.is_null() { vec![setting] } else { vec![] });
                (with_body(req, body), false, details)
            }
            _ => (req.forward(), false, None),
        },
        (E::SettingReset, Some(setting)) => {
            let mut put = with_body(
                req,
                settings::with_kept(setting, &Value::Null)
                    .to_string()
                    .into_bytes(),
            );
            put.method = http::Method::PUT;
            put.headers
                .retain(|(name, _)| name != http::header::CONTENT_TYPE);
            put.headers.push((
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            ));
            (put, false, reset_details(vec![setting]))
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

/// The kept settings a `PATCH /settings` body resets (`null`).
fn kept_resets(body: &[u8]) -> Vec<&'static str> {
    let v = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    settings::KEPT
        .iter()
        .map(|k| k.0)
        .filter(|s| v.get(*s) == Some(&Value::Null))
        .collect()
}

/// The kept settings a write sets or resets itself, the gateway's field included.
fn kept_carried(req: &Request<'_>) -> Vec<&'static str> {
    let body = serde_json::from_slice::<Value>(&req.body).unwrap_or(Value::Bool(false));
    let sets = |v: &Value| v.is_array() || v.is_null();
    match req.route.endpoint {
        Endpoint::SettingsUpdate => settings::KEPT
            .iter()
            .map(|k| k.0)
            .filter(|s| body.get(*s).is_some_and(sets))
            .collect(),
        Endpoint::SettingUpdate => req
            .route
            .param
            .as_deref()
            .and_then(settings::kept_setting_of_route)
            .filter(|_| sets(&body))
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
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
    // A reset of a missing index's setting fails (`index_not_found`) where the gateway's
    // field alone would create the index: the reset goes as is.
    let kept_route = req
        .route
        .param
        .as_deref()
        .and_then(settings::kept_setting_of_route);
    if endpoint == Endpoint::SettingReset && kept_route.is_some() {
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
                    details = Some(json!({
                        "filterableAttributes": null,
                        "sortableAttributes": null,
                        "faceting": null
                    }));
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
                    for (setting, _, _) in settings::KEPT {
                        if !body.contains_key(setting) {
                            body.insert(setting.into(), settings::with_kept(setting, &Value::Null));
                            hidden.push(setting);
                        }
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
    // A settings write creates a missing index: the new index needs the gateway's fields in
    // the settings the write does not carry itself.
    let carried = if creates_index {
        settings::KEPT.iter().map(|k| k.0).collect()
    } else {
        kept_carried(req)
    };
    let keep_after: Vec<&str> = settings::KEPT
        .iter()
        .map(|k| k.0)
        .filter(|s| !carried.contains(s))
        .collect();
    if matches!(endpoint, Endpoint::SettingsUpdate | Endpoint::SettingUpdate)
        && !tag_after
        && !keep_after.is_empty()
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
        // The gateway's fields and the nodes' facet depth, in one follow-up task.
        let keep = if tag_after { &keep_after[..] } else { &[] };
        let depth_value =
            depth_after.then(|| depth.node_value(client.unwrap_or(facet_depth::DEFAULT)));
        if !keep.is_empty() || depth_value.is_some() {
            for node in topology.write_nodes() {
                sends.push(Send {
                    node,
                    request: cluster.own_request(settings::keep(index, keep, depth_value)),
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
