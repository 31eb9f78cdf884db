//! The gateway-owned task routes: `GET /tasks/{uid}`, `GET /tasks`, `POST /tasks/cancel`,
//! `DELETE /tasks`. Keys and query syntax are checked by a node, so errors are Meilisearch's.

use bytes::Bytes;
use http::Method;
use serde_json::{json, Value};

use super::{relay, store_failure, unreachable, Request, Services};
use crate::auth::{AuthError, Scope};
use crate::cluster::Cluster;
use crate::error::{ErrorType, MeiliError};
use crate::respond::Reply;
use crate::tasks::prune::act_on_nodes;
use crate::tasks::{GatewayTask, NodeTaskRef, TaskFilter};
use crate::transport::NodeRequest;

/// Checks the client's key for the route's action with a node; the indexes whose tasks it
/// may see.
pub(super) async fn authorize(
    cluster: &Cluster<'_>,
    services: &Services,
    req: &Request<'_>,
) -> Result<Scope, Reply> {
    match services
        .auth
        .check(
            cluster,
            req.headers.get(http::header::AUTHORIZATION),
            req.route,
            req.method,
            req.path,
        )
        .await
    {
        Ok(scope) => Ok(scope),
        Err(AuthError::Denied(d)) => Err(Reply::json(d.status, d.body)),
        Err(AuthError::NoNode) => Err(unreachable("no node answered the key check")),
    }
}

/// Has a node validate the filters of `query` (with the client's key when `client_key`).
async fn validate(
    cluster: &Cluster<'_>,
    req: &Request<'_>,
    query: &str,
    client_key: bool,
) -> Result<(), Reply> {
    validate_on(cluster, req, "/tasks", query, client_key).await
}

/// [`validate`] on another route taking the same filters (`/batches`).
pub(super) async fn validate_on(
    cluster: &Cluster<'_>,
    req: &Request<'_>,
    path: &str,
    query: &str,
    client_key: bool,
) -> Result<(), Reply> {
    let target = if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    };
    let probe = if client_key {
        req.to_node(Method::GET, target, None, Bytes::new())
    } else {
        cluster.own_request(NodeRequest::get(target))
    };
    match cluster.send_any(&probe).await {
        Ok((_, resp)) if resp.status == 200 => Ok(()),
        Ok((_, resp)) => Err(relay(&resp)),
        Err(e) => Err(unreachable(&e.to_string())),
    }
}

/// The task or batch uid of the path (`what`: "Task" or "Batch"), or a node's `400` for it.
pub(super) fn path_uid(req: &Request<'_>, what: &str) -> Result<u64, Reply> {
    let raw = req.route.param.as_deref().unwrap_or_default();
    raw.parse::<u32>().map(u64::from).map_err(|_| {
        let code = if what == "Batch" {
            "invalid_batch_uids"
        } else {
            "invalid_task_uids"
        };
        Reply::error(&MeiliError::new(
            400,
            code,
            ErrorType::InvalidRequest,
            format!("{what} uid `{raw}` is invalid. It should only contain numeric characters."),
        ))
    })
}

/// `GET /tasks/{uid}`.
pub async fn get(cluster: &Cluster<'_>, services: &Services, req: &Request<'_>) -> Reply {
    let scope = match authorize(cluster, services, req).await {
        Ok(scope) => scope,
        Err(denied) => return denied,
    };
    let uid = match path_uid(req, "Task") {
        Ok(uid) => uid,
        Err(bad) => return bad,
    };
    match services.tasks.view(cluster, uid).await {
        // A task outside the key's indexes is not found, as on a node.
        Ok(Some(view)) if scope.allows_task(&view) => Reply::json(200, view.to_string()),
        Ok(_) => Reply::error(&MeiliError::new(
            404,
            "task_not_found",
            ErrorType::InvalidRequest,
            format!("Task `{uid}` not found."),
        )),
        Err(e) => store_failure(&e),
    }
}

/// `GET /tasks`: the node's own validation (and key check), then the gateway's list.
pub async fn list(cluster: &Cluster<'_>, services: &Services, req: &Request<'_>) -> Reply {
    if let Err(reply) = validate(cluster, req, req.query, true).await {
        return reply;
    }
    let scope = match authorize(cluster, services, req).await {
        Ok(scope) => scope,
        Err(denied) => return denied,
    };
    match services
        .tasks
        .list(cluster, &TaskFilter::parse(req.query), &scope)
        .await
    {
        Ok(body) => Reply::json(200, body.to_string()),
        Err(e) => store_failure(&e),
    }
}

fn missing_filters(what: &str) -> Reply {
    Reply::error(&MeiliError::new(
        400,
        "missing_task_filters",
        ErrorType::InvalidRequest,
        format!("Query parameters to filter the tasks to {what} are missing. Available query parameters are: `uids`, `indexUids`, `statuses`, `types`, `canceledBy`, `beforeEnqueuedAt`, `afterEnqueuedAt`, `beforeStartedAt`, `afterStartedAt`, `beforeFinishedAt`, `afterFinishedAt`."),
    ))
}

/// Records a task-management task (cancelation or deletion) and answers `200` with it.
fn record(
    services: &Services,
    req: &Request<'_>,
    kind: &str,
    node_tasks: Vec<NodeTaskRef>,
    details: Value,
) -> Result<GatewayTask, Reply> {
    services
        .tasks
        .create(|uid| {
            GatewayTask::about_tasks(uid, kind, req.received_at.clone(), node_tasks, details)
        })
        .map_err(|e| store_failure(&e))
}

/// `POST /tasks/cancel`: cancels the node tasks behind matching tasks in progress.
pub async fn cancel(cluster: &Cluster<'_>, services: &Services, req: &Request<'_>) -> Reply {
    let scope = match authorize(cluster, services, req).await {
        Ok(scope) => scope,
        Err(denied) => return denied,
    };
    if !TaskFilter::has_filters(req.query) {
        return missing_filters("cancel");
    }
    if let Err(reply) = validate(cluster, req, req.query, false).await {
        return reply;
    }
    let filter = TaskFilter::parse(req.query);
    let matched = match services.tasks.unfinished_matching(&filter, &scope) {
        Ok(m) => m,
        Err(e) => return store_failure(&e),
    };
    let node_tasks = act_on_nodes(cluster, &matched, Method::POST, "/tasks/cancel").await;
    let details = json!({
        "matchedTasks": matched.len(),
        "canceledTasks": matched.len(),
        "originalFilter": format!("?{}", req.query),
    });
    let task = match record(services, req, "taskCancelation", node_tasks, details) {
        Ok(t) => t,
        Err(reply) => return reply,
    };
    for mut t in matched {
        t.canceled_by = Some(task.uid);
        if let Err(e) = services.tasks.put(&t) {
            return store_failure(&e);
        }
    }
    Reply::json(200, task.summary().to_string())
}

/// Waits (up to the read deadline) for the unfinished tasks a deletion may match once they
/// finish: a node processes a deletion after the batch in progress, so a task that was
/// running when the deletion was asked for is deleted too.
async fn settle_first(
    cluster: &Cluster<'_>,
    services: &Services,
    filter: &TaskFilter,
    scope: &crate::auth::Scope,
) {
    // What a task may match once it is done: its status and times are still to come.
    let mut eventually = filter.clone();
    eventually.statuses = None;
    eventually
        .dates
        .retain(|(field, _, _)| *field == "enqueuedAt");
    let Ok(waiting) = services.tasks.unfinished_matching(&eventually, scope) else {
        return;
    };
    let deadline = tokio::time::Instant::now() + cluster.reads.deadline;
    for task in waiting {
        while tokio::time::Instant::now() < deadline {
            match services.tasks.view(cluster, task.uid).await {
                Ok(Some(view))
                    if !matches!(view["status"].as_str(), Some("enqueued" | "processing")) =>
                {
                    break
                }
                Ok(Some(_)) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                _ => break,
            }
        }
    }
}

/// `DELETE /tasks`: forgets matching finished tasks, here and on the nodes.
pub async fn delete(cluster: &Cluster<'_>, services: &Services, req: &Request<'_>) -> Reply {
    let scope = match authorize(cluster, services, req).await {
        Ok(scope) => scope,
        Err(denied) => return denied,
    };
    if !TaskFilter::has_filters(req.query) {
        return missing_filters("delete");
    }
    if let Err(reply) = validate(cluster, req, req.query, false).await {
        return reply;
    }
    let filter = TaskFilter::parse(req.query);
    settle_first(cluster, services, &filter, &scope).await;
    let matched = match services.tasks.finished_matching(&filter, &scope) {
        Ok(m) => m,
        Err(e) => return store_failure(&e),
    };
    let node_tasks = act_on_nodes(cluster, &matched, Method::DELETE, "/tasks").await;
    let uids: Vec<u64> = matched.iter().map(|t| t.uid).collect();
    if let Err(e) = services.tasks.delete(&uids) {
        return store_failure(&e);
    }
    let details = json!({
        "matchedTasks": matched.len(),
        "deletedTasks": matched.len(),
        "originalFilter": format!("?{}", req.query),
    });
    match record(services, req, "taskDeletion", node_tasks, details) {
        Ok(task) => Reply::json(200, task.summary().to_string()),
        Err(reply) => reply,
    }
}
