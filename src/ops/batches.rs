//! `GET /batches` and `GET /batches/{uid}`, from the gateway's tasks: each gateway task is a
//! batch of its own once it has started (its `batchUid` is its uid), shown as a node shows a
//! batch. The nodes batch their own parts independently; their batches are theirs.

use serde_json::{json, Map, Value};

use super::task_routes::{authorize, validate_on};
use super::{store_failure, Request, Services};
use crate::cluster::Cluster;
use crate::error::{ErrorType, MeiliError};
use crate::respond::Reply;
use crate::tasks::TaskFilter;

/// What a batch's `batchStrategy` says: why it holds what it holds.
const STRATEGY: &str = "one gateway task per batch";

/// The batch of a started task, from the task's view (`None` before it started).
pub fn batch_view(task: &Value) -> Option<Value> {
    let uid = task["batchUid"].as_u64()?;
    let one = |key: &Value| -> Value {
        let mut m = Map::new();
        if let Some(k) = key.as_str() {
            m.insert(k.to_string(), Value::from(1));
        }
        Value::Object(m)
    };
    Some(json!({
        "uid": uid,
        "progress": null,
        "details": task.get("details").cloned().unwrap_or_else(|| json!({})),
        "stats": {
            "totalNbTasks": 1,
            "status": one(&task["status"]),
            "types": one(&task["type"]),
            "indexUids": one(&task["indexUid"]),
            // Each node traced its own part; the gateway's batch has no steps of its own.
            "progressTrace": {},
        },
        "duration": task["duration"],
        "startedAt": task["startedAt"],
        "finishedAt": task["finishedAt"],
        "batchStrategy": STRATEGY,
    }))
}

fn not_found(uid: u64) -> Reply {
    Reply::error(&MeiliError::new(
        404,
        "batch_not_found",
        ErrorType::InvalidRequest,
        format!("Batch `{uid}` not found."),
    ))
}

/// `GET /batches/{uid}`.
pub async fn get(cluster: &Cluster<'_>, services: &Services, req: &Request<'_>) -> Reply {
    let scope = match authorize(cluster, services, req).await {
        Ok(scope) => scope,
        Err(denied) => return denied,
    };
    let uid = match super::task_routes::path_uid(req, "Batch") {
        Ok(uid) => uid,
        Err(bad) => return bad,
    };
    match services.tasks.view(cluster, uid).await {
        Ok(Some(view)) if scope.allows_task(&view) => match batch_view(&view) {
            Some(batch) => Reply::json(200, batch.to_string()),
            None => not_found(uid),
        },
        Ok(_) => not_found(uid),
        Err(e) => store_failure(&e),
    }
}

/// `GET /batches`: the node's own validation of the filters (and key check), then the
/// batches of the gateway's tasks that match, paged by batch uid.
pub async fn list(cluster: &Cluster<'_>, services: &Services, req: &Request<'_>) -> Reply {
    if let Err(reply) = validate_on(cluster, req, "/batches", req.query, true).await {
        return reply;
    }
    let scope = match authorize(cluster, services, req).await {
        Ok(scope) => scope,
        Err(denied) => return denied,
    };
    let filter = TaskFilter {
        batched: true,
        ..TaskFilter::parse(req.query)
    };
    match services.tasks.list(cluster, &filter, &scope).await {
        Ok(mut page) => {
            let batches: Vec<Value> = page["results"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(batch_view)
                .collect();
            page["results"] = Value::Array(batches);
            Reply::json(200, page.to_string())
        }
        Err(e) => store_failure(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_started_task_is_a_batch_of_its_own() {
        let task = json!({"uid": 7, "batchUid": 7, "indexUid": "movies", "status": "succeeded",
            "type": "documentAdditionOrUpdate", "canceledBy": null,
            "details": {"receivedDocuments": 2, "indexedDocuments": 2}, "error": null,
            "duration": "PT0.5S", "enqueuedAt": "2026-01-01T00:00:00Z",
            "startedAt": "2026-01-01T00:00:01Z", "finishedAt": "2026-01-01T00:00:01.5Z"});
        let batch = batch_view(&task).unwrap();
        assert_eq!(
            batch,
            json!({"uid": 7, "progress": null,
                "details": {"receivedDocuments": 2, "indexedDocuments": 2},
                "stats": {"totalNbTasks": 1, "status": {"succeeded": 1},
                    "types": {"documentAdditionOrUpdate": 1}, "indexUids": {"movies": 1},
                    "progressTrace": {}},
                "duration": "PT0.5S", "startedAt": "2026-01-01T00:00:01Z",
                "finishedAt": "2026-01-01T00:00:01.5Z", "batchStrategy": STRATEGY})
        );
        let keys: Vec<&String> = batch.as_object().unwrap().keys().collect();
        assert_eq!(
            keys[..3],
            ["uid", "progress", "details"],
            "a node's field order"
        );
        let mut enqueued = task.clone();
        enqueued["batchUid"] = Value::Null;
        assert_eq!(batch_view(&enqueued), None);
        let mut no_index = task;
        no_index["indexUid"] = Value::Null;
        assert_eq!(
            batch_view(&no_index).unwrap()["stats"]["indexUids"],
            json!({})
        );
    }
}
