//! Reads that need the shard tag hidden: settings (from any node) and one document (from an
//! owner of its shard).

use serde_json::Value;

use super::{relay, unreachable, Request, Services};
use crate::cluster::Cluster;
use crate::facet_depth;
use crate::query_string::percent_decode;
use crate::respond::Reply;
use crate::routing::shard_of;
use crate::shard_tag;
use crate::shard_tag::settings;
use crate::transport::{NodeRequest, NodeResponse};

/// `GET /indexes/{uid}/settings[/name]` without the tag, with the client's
/// `maxValuesPerFacet` (the nodes keep more, see [`crate::facet_depth`]).
pub async fn settings(cluster: &Cluster<'_>, services: &Services, req: &Request<'_>) -> Reply {
    let resp = match cluster.send_any(&req.forward()).await {
        Ok((_, resp)) => resp,
        Err(e) => return unreachable(&e.to_string()),
    };
    if resp.status != 200 {
        return relay(&resp);
    }
    let Ok(mut body) = serde_json::from_slice::<Value>(&resp.body) else {
        return relay(&resp);
    };
    let client_facets = req
        .route
        .index
        .as_deref()
        .and_then(|i| services.tasks.client_facet_values(i));
    if let Some(setting) = req
        .route
        .param
        .as_deref()
        .and_then(settings::kept_setting_of_route)
    {
        settings::hide_kept(setting, &mut body);
        return Reply::json(200, body.to_string());
    }
    match (req.route.param.as_deref(), client_facets) {
        (None, _) => {
            settings::hide_in_settings(&mut body);
            if let (Some(f), Some(v)) = (body.get_mut("faceting"), client_facets) {
                facet_depth::show(f, v);
            }
        }
        (Some("faceting"), Some(v)) => facet_depth::show(&mut body, v),
        (Some(_), _) => return relay(&resp),
    }
    Reply::json(200, body.to_string())
}

/// `GET /indexes/{uid}/documents/{id}` from an owner, without the gateway's fields.
pub async fn document(cluster: &Cluster<'_>, req: &Request<'_>) -> Reply {
    let id = percent_decode(req.route.param.as_deref().unwrap_or_default());
    match from_owner(cluster, &id, &req.forward()).await {
        Ok(resp) if resp.status == 200 => {
            let Ok(mut doc) = serde_json::from_slice::<Value>(&resp.body) else {
                return relay(&resp);
            };
            if let Some(o) = doc.as_object_mut() {
                o.shift_remove(shard_tag::FIELD);
                o.shift_remove(shard_tag::order::FIELD);
            }
            Reply::json(200, doc.to_string())
        }
        Ok(resp) => relay(&resp),
        Err(last) => unreachable(&last),
    }
}

/// `request` answered by an owner of the shard of document `id` (those up first), or why
/// none answered.
pub(super) async fn from_owner(
    cluster: &Cluster<'_>,
    id: &str,
    request: &NodeRequest,
) -> Result<NodeResponse, String> {
    let topology = cluster.topology;
    let shard = shard_of(id.as_bytes(), topology.shards);
    let mut owners: Vec<usize> = topology.owners(shard).to_vec();
    owners.sort_by_key(|&n| !cluster.health.is_up(&topology.nodes[n]));
    let mut last = String::from("no owner");
    for node in owners {
        match cluster.send(node, request).await {
            Ok(resp) => return Ok(resp),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}
