//! Document writes: batches split by shard (one request per node), deletions routed to the
//! owners of the ids.

use bytes::Bytes;
use http::{HeaderValue, Method};
use serde_json::{json, Value};

use super::write::{execute, failed_task, Send, WritePlan};
use super::{relay, unreachable, Request, Services};
use crate::cluster::Cluster;
use crate::error::{ErrorType, MeiliError};
use crate::query_string::percent_decode;
use crate::respond::Reply;
use crate::routing::shard_of;
use crate::shard_tag::settings;
use crate::split::{self, Format, KeyChoice, PayloadError, SplitError};

/// The format a validated `Content-Type` names.
fn format_of(req: &Request<'_>) -> Option<Format> {
    let ct = req.headers.get(http::header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = ct.split(';').next()?.trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Some(Format::Json),
        "application/x-ndjson" => Some(Format::Ndjson),
        "text/csv" => {
            let delimiter = req
                .param("csvDelimiter")
                .and_then(|d| d.bytes().next())
                .unwrap_or(b',');
            Some(Format::Csv { delimiter })
        }
        _ => None,
    }
}

/// `POST`/`PUT /indexes/{uid}/documents`.
pub async fn add(cluster: &Cluster<'_>, services: &Services, req: &Request<'_>) -> Reply {
    let index = req.route.index.clone().unwrap_or_default();
    // A node checks everything a single node checks before reading the payload (key,
    // parameters, index uid, Content-Type), on an empty body: its `missing_payload` means the
    // request is otherwise acceptable, anything else is the client's answer.
    let probe = req.to_node(
        req.method.clone(),
        req.target(),
        req.headers.get(http::header::CONTENT_TYPE),
        Bytes::new(),
    );
    let probe = match cluster.send_any(&probe).await {
        Ok((_, resp)) => resp,
        Err(e) => return unreachable(&e.to_string()),
    };
    let missing_payload = probe.status == 400
        && serde_json::from_slice::<Value>(&probe.body)
            .is_ok_and(|v| v["code"] == "missing_payload");
    if !missing_payload || req.body.is_empty() {
        return relay(&probe);
    }
    let Some(format) = format_of(req) else {
        return relay(&probe);
    };

    let mut info = match services.indexes.lookup(cluster, &index).await {
        Ok(info) => info,
        Err(e) => return unreachable(&e.to_string()),
    };
    // A write that may create the index goes after any other one doing so, and sees the key
    // that one chose.
    let _creating = match info {
        Some(_) => None,
        None => {
            let guard = services.indexes.creating(&index).await;
            info = match services.indexes.lookup(cluster, &index).await {
                Ok(info) => info,
                Err(e) => return unreachable(&e.to_string()),
            };
            Some(guard)
        }
    };
    let param_key = req.param("primaryKey");
    // A node fails the task of a `primaryKey` other than the index's, writing nothing.
    if let (Some(existing), Some(asked)) = (
        info.as_ref().and_then(|i| i.primary_key.as_deref()),
        param_key.as_deref(),
    ) {
        if existing != asked {
            let message = format!("Index already has a primary key: `{existing}`.");
            let code = ("index_primary_key_already_exists", "invalid_request");
            return failed_batch(services, req, index, format, code, message);
        }
    }
    let key = match (
        info.as_ref().and_then(|i| i.primary_key.as_deref()),
        param_key.as_deref(),
    ) {
        (Some(k), _) => KeyChoice::Known(k),
        (None, Some(k)) => KeyChoice::Known(k),
        (None, None) => KeyChoice::Infer,
    };
    let topology = cluster.topology;
    let body = req.body.clone();
    let split = super::cpu_bound(body.len(), || {
        split::split(&body, format, key, topology.write_placement())
    });
    let mut batch = match split {
        Ok(b) => b,
        Err(SplitError::Payload(PayloadError::Missing(f))) => {
            return Reply::error(&MeiliError::new(
                400,
                "missing_payload",
                ErrorType::InvalidRequest,
                format!("A {} payload is missing.", f.name()),
            ))
        }
        Err(SplitError::Payload(PayloadError::Malformed(m))) => {
            return Reply::error(&MeiliError::new(
                400,
                "malformed_payload",
                ErrorType::InvalidRequest,
                m,
            ))
        }
        Err(SplitError::Payload(PayloadError::Internal(m))) => {
            return Reply::error(&MeiliError::new(500, "internal", ErrorType::Internal, m))
        }
        Err(SplitError::Document(e)) => {
            // Errors of the indexing itself name the index, as a node's do.
            let message = match &e {
                crate::split::DocumentError::Unparsable(_) => {
                    format!("Index `{index}`: {}", e.message())
                }
                _ => e.message(),
            };
            return failed_batch(services, req, index, format, (e.code(), e.kind()), message);
        }
    };
    cluster
        .metrics
        .write_batch_documents
        .observe(batch.documents as f64);
    if info.as_ref().is_none_or(|i| i.primary_key.is_none()) {
        services.indexes.remember(&index, &batch.primary_key);
    }

    // Into an index every node holds with this primary key, only the owners of these
    // documents get a request; otherwise every node does, an empty batch if it owns none of
    // them, so the index exists everywhere with the same primary key. (An empty batch costs
    // a node as much indexing time as a small one: half a second here.)
    let settled =
        info.as_ref().and_then(|i| i.primary_key.as_deref()) == Some(batch.primary_key.as_str());
    super::order::stamp(cluster, &services.order, &index, settled, &mut batch).await;
    let mut query: Vec<String> = vec![format!(
        "primaryKey={}",
        crate::query_string::percent_encode(&batch.primary_key)
    )];
    for name in ["customMetadata", "skipCreation"] {
        if let Some(v) = req.param(name) {
            query.push(format!(
                "{name}={}",
                crate::query_string::percent_encode(&v)
            ));
        }
    }
    let json_ct = HeaderValue::from_static("application/json");
    let format_ct = HeaderValue::from_static(format.content_type());
    let mut sends = Vec::new();
    if let Format::Csv { delimiter } = format {
        let delimiter = (delimiter as char).to_string();
        query.push(format!(
            "csvDelimiter={}",
            crate::query_string::percent_encode(&delimiter)
        ));
    }
    let target = format!("{}?{}", req.path, query.join("&"));
    let empty_target = format!(
        "{}?{}",
        req.path,
        query
            .iter()
            .filter(|q| !q.starts_with("csvDelimiter="))
            .cloned()
            .collect::<Vec<_>>()
            .join("&")
    );
    for (node, (body, count)) in batch.bodies.into_iter().zip(&batch.counts).enumerate() {
        // A node leaving the fleet with no shard left gets nothing more.
        if *count == 0
            && (settled || topology.recorder(node).is_some() || !topology.takes_writes(node))
        {
            continue;
        }
        if *count == 0 {
            let body = Bytes::from_static(b"[]");
            let request = req.to_node(
                req.method.clone(),
                empty_target.clone(),
                Some(&json_ct),
                body,
            );
            sends.push(Send {
                node,
                request,
                internal: false,
            });
            continue;
        }
        // A part a node would refuse as too large (the tags make it grow) goes as several.
        for (part, _) in split::parts(body, *count, format, cluster.node_payload_bytes) {
            let request = req.to_node(
                req.method.clone(),
                target.clone(),
                Some(&format_ct),
                Bytes::from(part),
            );
            sends.push(Send {
                node,
                request,
                internal: false,
            });
        }
    }
    if info.is_none() {
        // A new index: the tag filterable, and the nodes' facet values deeper than the
        // client's (see `crate::facet_depth`).
        let client = services.tasks.client_facet_values(&index);
        if client.is_none() {
            let default = Some(crate::facet_depth::DEFAULT);
            if let Err(e) = services.tasks.set_client_facet_values(&index, default) {
                return super::store_failure(&e);
            }
        }
        let value = services
            .facet_depth
            .node_value(client.unwrap_or(crate::facet_depth::DEFAULT));
        // One settings task per node for both, behind the documents.
        for n in topology.write_nodes() {
            sends.push(Send {
                node: n,
                request: cluster.own_request(settings::new_index(&index, value)),
                internal: true,
            });
        }
    }
    let plan = WritePlan {
        sends,
        shards: batch.shards,
        kind: "documentAdditionOrUpdate",
        index_uid: Some(index),
        details: Some(json!({"receivedDocuments": batch.documents})),
        copies: topology.copies() as u32,
    };
    execute(cluster, services, req, plan).await
}

/// Documents in a payload known to be well formed (for the details of a failed task).
fn count_documents(body: &[u8], format: Format) -> usize {
    match format {
        // Raw values: documents too deep for a tree are counted too.
        Format::Json => match serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(body) {
            Ok(a) => a.len(),
            Err(_) => {
                usize::from(serde_json::from_slice::<&serde_json::value::RawValue>(body).is_ok())
            }
        },
        Format::Ndjson => serde_json::Deserializer::from_slice(body)
            .into_iter::<&serde_json::value::RawValue>()
            .count(),
        Format::Csv { delimiter } => csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .from_reader(body)
            .records()
            .count(),
    }
}

/// A batch's task failed as a node would fail it, with nothing written anywhere.
fn failed_batch(
    services: &Services,
    req: &Request<'_>,
    index: String,
    format: Format,
    code: (&str, &str),
    message: String,
) -> Reply {
    let documents = count_documents(&req.body, format);
    let details = json!({"receivedDocuments": documents, "indexedDocuments": 0});
    let kind = "documentAdditionOrUpdate";
    failed_task(services, req, kind, Some(index), details, code, message)
}

/// `DELETE /indexes/{uid}/documents/{id}`: to the owners of the id's shard.
pub async fn delete_one(cluster: &Cluster<'_>, services: &Services, req: &Request<'_>) -> Reply {
    let id = percent_decode(req.route.param.as_deref().unwrap_or_default());
    let topology = cluster.topology;
    let shard = shard_of(id.as_bytes(), topology.shards);
    let owners = topology.write_owners(shard).collect();
    let plan = forwarded_deletion(cluster, req, owners, vec![shard], json!({"providedIds": 1}));
    execute(cluster, services, req, plan).await
}

/// A deletion sent as the client wrote it to `nodes`.
fn forwarded_deletion(
    cluster: &Cluster<'_>,
    req: &Request<'_>,
    nodes: Vec<usize>,
    shards: Vec<u32>,
    details: Value,
) -> WritePlan {
    let sends = nodes
        .into_iter()
        .map(|node| Send {
            node,
            request: req.forward(),
            internal: false,
        })
        .collect();
    WritePlan {
        sends,
        shards,
        kind: "documentDeletion",
        index_uid: req.route.index.clone(),
        details: (!details.is_null()).then_some(details),
        copies: cluster.topology.copies() as u32,
    }
}

/// `POST /indexes/{uid}/documents/delete-batch`: the ids split by shard.
pub async fn delete_batch(cluster: &Cluster<'_>, services: &Services, req: &Request<'_>) -> Reply {
    let topology = cluster.topology;
    let ids: Option<Vec<Value>> = serde_json::from_slice(&req.body).ok();
    let routable = ids.as_ref().is_some_and(|ids| {
        ids.iter()
            .all(|v| matches!(v, Value::String(_)) || v.as_i64().is_some() || v.as_u64().is_some())
    });
    let Some(ids) = ids.filter(|ids| routable && !ids.is_empty()) else {
        // Empty, malformed or odd bodies go to every node: each gives the same answer.
        let all = topology.write_nodes();
        let shards = (0..topology.shards).collect();
        let plan = forwarded_deletion(cluster, req, all, shards, Value::Null);
        return execute(cluster, services, req, plan).await;
    };
    let mut per_node: Vec<Vec<&Value>> =
        vec![Vec::new(); topology.nodes.len() + topology.recorders.len()];
    let mut shards = Vec::new();
    for id in &ids {
        let canonical = match id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let shard = shard_of(canonical.as_bytes(), topology.shards);
        shards.push(shard);
        for n in topology.write_owners(shard) {
            per_node[n].push(id);
        }
    }
    shards.sort_unstable();
    shards.dedup();
    let ct = HeaderValue::from_static("application/json");
    let sends = per_node
        .into_iter()
        .enumerate()
        .filter(|(_, ids)| !ids.is_empty())
        .map(|(node, ids)| Send {
            node,
            request: req.to_node(
                Method::POST,
                req.target(),
                Some(&ct),
                Bytes::from(serde_json::to_vec(&ids).unwrap_or_default()),
            ),
            internal: false,
        })
        .collect();
    let plan = WritePlan {
        sends,
        shards,
        kind: "documentDeletion",
        index_uid: req.route.index.clone(),
        details: Some(json!({"providedIds": ids.len()})),
        copies: topology.copies() as u32,
    };
    execute(cluster, services, req, plan).await
}
