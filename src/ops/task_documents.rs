//! `GET /tasks/{uid}/documents` (experimental on a node): the documents a write received, as
//! a node stores them (JSON objects one after the other), while its task waits or runs. A gateway task's documents are its node tasks'
//! parts, read from every node and joined, the tag taken out; once any part is done (a node
//! drops a task's payload when it processes it) the answer is a node's: no documents.

use std::collections::HashSet;

use super::task_routes::authorize;
use super::{relay, store_failure, unreachable, Request, Services};
use crate::cluster::Cluster;
use crate::error::{ErrorType, MeiliError};
use crate::respond::Reply;
use crate::shard_tag;
use crate::transport::NodeRequest;

fn no_documents(uid: u64) -> Reply {
    Reply::error(&MeiliError::new(
        404,
        "task_file_not_found",
        ErrorType::InvalidRequest,
        format!("Task `{uid}` does not contain any documents. Only `documentAdditionOrUpdate` tasks with the statuses `enqueued` or `processing` contain documents"),
    ))
}

pub async fn documents(cluster: &Cluster<'_>, services: &Services, req: &Request<'_>) -> Reply {
    // A node checks the key and the experimental feature before anything else.
    match cluster.send_any(&req.forward()).await {
        Ok((_, resp)) if matches!(resp.status, 400 | 401 | 403) => return relay(&resp),
        Ok(_) => {}
        Err(e) => return unreachable(&e.to_string()),
    }
    let scope = match authorize(cluster, services, req).await {
        Ok(scope) => scope,
        Err(denied) => return denied,
    };
    let uid = match super::task_routes::path_uid(req, "Task") {
        Ok(uid) => uid,
        Err(bad) => return bad,
    };
    let (view, task) = match (
        services.tasks.view(cluster, uid).await,
        services.tasks.get(uid),
    ) {
        (Ok(Some(view)), Ok(Some(task))) if scope.allows_task(&view) => (view, task),
        (Err(e), _) | (_, Err(e)) => return store_failure(&e),
        _ => {
            return Reply::error(&MeiliError::new(
                404,
                "task_not_found",
                ErrorType::InvalidRequest,
                format!("Task `{uid}` not found."),
            ))
        }
    };
    let waiting = matches!(view["status"].as_str(), Some("enqueued" | "processing"));
    if task.kind != "documentAdditionOrUpdate" || !waiting {
        return no_documents(uid);
    }
    let reads = task
        .node_tasks
        .iter()
        .filter(|r| !r.internal)
        .filter_map(|r| {
            let node = cluster.topology.node_by_id(&r.node)?;
            let read = NodeRequest::get(format!("/tasks/{}/documents", r.uid));
            Some((node, cluster.own_request(read)))
        })
        .collect();
    let mut out = Vec::new();
    // With replicas every document went to several nodes: each is shown once.
    let mut seen = HashSet::new();
    for (_, result) in cluster.send_each(reads).await {
        match result {
            Ok(resp) if resp.status == 200 => {
                // A node gives the payload it stored: JSON objects one after the other.
                let objects = serde_json::Deserializer::from_slice(&resp.body)
                    .into_iter::<&serde_json::value::RawValue>();
                for object in objects {
                    let Ok(object) = object else { break };
                    let bytes = object.get().as_bytes();
                    if task.copies > 1 && !seen.insert(bytes.to_vec()) {
                        continue;
                    }
                    let drop = |k: &[u8]| shard_tag::is_reserved(k);
                    crate::merge::raw::write_object_without(
                        bytes,
                        (0, bytes.len()),
                        &drop,
                        &|_| false,
                        &mut out,
                    );
                }
            }
            Ok(_) => return no_documents(uid),
            Err(e) => return unreachable(&e.to_string()),
        }
    }
    Reply {
        status: 200,
        content_type: Some("application/x-ndjson"),
        headers: Vec::new(),
        body: out.into(),
    }
}
