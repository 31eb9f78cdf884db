//! `POST /indexes/{uid}/fields`: every node holding shards lists all its fields, the gateway
//! merges them ([`crate::merge::fields`]) and pages the union as the client asked.

use bytes::Bytes;
use serde_json::Value;

use super::{relay, unreachable, Request};
use crate::cluster::Cluster;
use crate::merge::fields::merge_fields;
use crate::respond::Reply;

/// More fields than any index has: each node's whole list.
const ALL: u64 = 1_000_000;

pub async fn fields(cluster: &Cluster<'_>, req: &Request<'_>) -> Reply {
    let page = |body: &serde_json::Map<String, Value>, key: &str, default: u64| match body.get(key)
    {
        None => Some(default),
        Some(v) => v.as_u64(),
    };
    let parsed = req.json_object().and_then(|body| {
        let (offset, limit) = (page(&body, "offset", 0)?, page(&body, "limit", 20)?);
        Some((body, offset, limit))
    });
    // A body a node would refuse: its error, as is.
    let Some((mut body, offset, limit)) = parsed else {
        return match cluster.send_any(&req.forward()).await {
            Ok((_, resp)) => relay(&resp),
            Err(e) => unreachable(&e.to_string()),
        };
    };
    body.insert("offset".into(), Value::from(0));
    body.insert("limit".into(), Value::from(ALL));
    let mut all = req.forward();
    all.body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    let sends = cluster
        .topology
        .serving_nodes()
        .iter()
        .map(|&n| (n, all.clone()))
        .collect();
    let mut lists = Vec::new();
    for (_, result) in cluster.send_each(sends).await {
        match result {
            Ok(resp) if resp.status == 200 => {
                let mut v: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
                match v["results"].take() {
                    Value::Array(list) => lists.push(list),
                    _ => return relay(&resp),
                }
            }
            Ok(resp) => return relay(&resp),
            Err(e) => return unreachable(&e.to_string()),
        }
    }
    let refs: Vec<&[Value]> = lists.iter().map(Vec::as_slice).collect();
    let merged = merge_fields(&refs, offset as usize, limit as usize);
    Reply::json(200, merged.to_string())
}
