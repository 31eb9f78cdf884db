//! One Meilisearch task view from the node tasks behind a gateway task.
//!
//! Status: failed if any node task failed, else canceled if any was canceled, else succeeded
//! when all succeeded, else processing once any started, else enqueued. Details: the first
//! node's, with document counts summed over nodes and divided by the copies per document,
//! then the gateway's own values on top. Times: the gateway's `enqueuedAt`, the earliest
//! `startedAt`, the latest `finishedAt`.

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::model::{GatewayTask, Status};
use crate::shard_tag::settings;

/// Detail fields that count documents, summed across nodes.
const COUNTS: &[&str] = &["indexedDocuments", "deletedDocuments", "editedDocuments"];

fn node_status(view: &Value) -> Option<Status> {
    view.get("status")
        .and_then(Value::as_str)
        .and_then(Status::parse)
}

fn time_of(view: &Value, field: &str) -> Option<OffsetDateTime> {
    view.get(field)
        .and_then(Value::as_str)
        .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
}

/// Now, formatted as Meilisearch formats its dates.
pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Meilisearch's ISO 8601 duration (`PT0.012S`, `PT1.000123S`, `P1DT2S`).
pub fn iso_duration(d: time::Duration) -> Option<String> {
    if d.is_negative() {
        return None;
    }
    let secs_per_day = 86_400;
    let secs = d.whole_seconds();
    let days = secs / secs_per_day;
    let secs = secs - days * secs_per_day;
    let nanos = d.subsec_nanoseconds();
    let mut out = String::from("P");
    if days != 0 {
        out.push_str(&format!("{days}D"));
    }
    if secs != 0 || nanos != 0 || days == 0 {
        if nanos == 0 {
            out.push_str(&format!("T{secs}S"));
        } else if nanos % 1_000_000 == 0 {
            out.push_str(&format!("T{secs}.{:03}S", nanos / 1_000_000));
        } else if nanos % 1_000 == 0 {
            out.push_str(&format!("T{secs}.{:06}S", nanos / 1_000));
        } else {
            out.push_str(&format!("T{secs}.{nanos:09}S"));
        }
    }
    Some(out)
}

/// Removes the gateway's fields from settings shown in task details.
pub fn hide_tag_in_details(details: &mut Map<String, Value>) {
    for (setting, _, _) in settings::KEPT {
        if let Some(v) = details.get_mut(setting) {
            settings::hide_kept(setting, v);
        }
    }
}

/// The view of `task` given its node tasks' views (`None`: that node could not be asked).
pub fn aggregate(task: &GatewayTask, node_views: &[Option<Value>]) -> Value {
    let statuses: Vec<Option<Status>> = node_views
        .iter()
        .map(|v| v.as_ref().and_then(node_status))
        .collect();
    let any = |s: Status| statuses.contains(&Some(s));
    // Settled by the gateway alone: nothing was, or will be, asked of any node.
    let settled_here =
        task.error.is_some() || (task.node_tasks.is_empty() && task.awaiting.is_empty());
    let status = if task.error.is_some() || any(Status::Failed) {
        Status::Failed
    } else if any(Status::Canceled) {
        Status::Canceled
    } else if !task.awaiting.is_empty() {
        // Some node has yet to receive its part (it is queued for it).
        if any(Status::Processing) || any(Status::Succeeded) {
            Status::Processing
        } else {
            Status::Enqueued
        }
    } else if !statuses.is_empty() && statuses.iter().all(|s| *s == Some(Status::Succeeded)) {
        Status::Succeeded
    } else if statuses
        .iter()
        .any(|s| matches!(s, Some(Status::Processing | Status::Succeeded)))
    {
        Status::Processing
    } else if task.node_tasks.is_empty() {
        // A task the gateway settled alone (nothing to ask any node).
        Status::Succeeded
    } else {
        Status::Enqueued
    };
    let all_final = statuses.iter().all(|s| s.is_some_and(Status::is_final));
    // A node failing first does not end the task while others still work on theirs: like a
    // single node's, the task ends once, with every count known.
    let status = if status.is_final() && task.error.is_none() && !all_final {
        Status::Processing
    } else {
        status
    };
    let done = status.is_final() && (task.error.is_some() || all_final);

    let started = node_views
        .iter()
        .flatten()
        .filter_map(|v| time_of(v, "startedAt"))
        .min();
    let finished = if done {
        node_views
            .iter()
            .flatten()
            .filter_map(|v| time_of(v, "finishedAt"))
            .max()
    } else {
        None
    };
    let gateway_now = || OffsetDateTime::now_utc();
    let (started, finished) = match (settled_here, started, finished) {
        // Settled by the gateway: it started and finished when it was decided.
        (true, None, _) => {
            let at = OffsetDateTime::parse(&task.enqueued_at, &Rfc3339)
                .unwrap_or_else(|_| gateway_now());
            (Some(at), Some(at))
        }
        (_, s, f) => (s, f),
    };

    let mut out = Map::new();
    out.insert("uid".into(), task.uid.into());
    out.insert(
        "batchUid".into(),
        if status == Status::Enqueued {
            Value::Null
        } else {
            task.uid.into()
        },
    );
    out.insert("indexUid".into(), task.index_uid.clone().into());
    out.insert("status".into(), status.as_str().into());
    out.insert("type".into(), task.kind.clone().into());
    out.insert(
        "canceledBy".into(),
        task.canceled_by.map_or(Value::Null, Value::from),
    );
    if let Some(details) = aggregate_details(task, node_views, done) {
        out.insert("details".into(), Value::Object(details));
    }
    let error = task.error.clone().or_else(|| {
        node_views
            .iter()
            .flatten()
            .find(|v| node_status(v) == Some(Status::Failed))
            .and_then(|v| v.get("error").cloned())
            .map(|mut e| {
                crate::shard_tag::messages::sanitize_error(&mut e);
                e
            })
    });
    out.insert("error".into(), error.unwrap_or(Value::Null));
    let duration = match (started, finished) {
        (Some(s), Some(f)) => iso_duration(f - s).map(Value::from).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    out.insert("duration".into(), duration);
    out.insert("enqueuedAt".into(), task.enqueued_at.clone().into());
    let fmt = |t: Option<OffsetDateTime>| {
        t.and_then(|t| t.format(&Rfc3339).ok())
            .map_or(Value::Null, Value::from)
    };
    out.insert("startedAt".into(), fmt(started));
    out.insert("finishedAt".into(), fmt(finished));
    if let Some(m) = &task.custom_metadata {
        out.insert("customMetadata".into(), m.clone().into());
    }
    Value::Object(out)
}

fn aggregate_details(
    task: &GatewayTask,
    node_views: &[Option<Value>],
    done: bool,
) -> Option<Map<String, Value>> {
    let public: Vec<&Value> = task
        .node_tasks
        .iter()
        .zip(node_views)
        .filter(|(r, _)| !r.internal)
        .filter_map(|(_, v)| v.as_ref())
        .collect();
    let template = public
        .iter()
        .find_map(|v| v.get("details").and_then(Value::as_object));
    let mut details = match (template, &task.details) {
        (Some(t), _) => t.clone(),
        (None, Some(Value::Object(g))) => g.clone(),
        _ => return None,
    };
    let copies = u64::from(task.copies.max(1));
    for key in COUNTS {
        if !details.contains_key(*key) {
            continue;
        }
        let values: Vec<Option<u64>> = public
            .iter()
            .map(|v| {
                v.get("details")
                    .and_then(|d| d.get(*key))
                    .and_then(Value::as_u64)
            })
            .collect();
        let total = if done && !values.is_empty() && values.iter().all(Option::is_some) {
            Value::from(values.iter().flatten().sum::<u64>() / copies)
        } else {
            Value::Null
        };
        details.insert((*key).to_string(), total);
    }
    if let Some(Value::Object(own)) = &task.details {
        for (k, v) in own {
            details.insert(k.clone(), v.clone());
        }
    }
    // Settings the gateway added to the client's request.
    if let Some(Value::Array(hidden)) = details.remove(super::HIDDEN_DETAILS) {
        for key in hidden.iter().filter_map(Value::as_str) {
            details.shift_remove(key);
        }
    }
    hide_tag_in_details(&mut details);
    if let Some(Value::String(filter)) = details.get_mut("originalFilter") {
        *filter = crate::shard_tag::guard::restore(filter);
    }
    Some(details)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::model::NodeTaskRef;
    use serde_json::json;

    fn task(nodes: usize) -> GatewayTask {
        GatewayTask {
            uid: 7,
            index_uid: Some("movies".into()),
            kind: "documentAdditionOrUpdate".into(),
            enqueued_at: "2026-01-01T00:00:00Z".into(),
            custom_metadata: None,
            copies: 1,
            node_tasks: (0..nodes)
                .map(|i| NodeTaskRef {
                    node: format!("n{i}"),
                    uid: i as u64,
                    internal: false,
                })
                .collect(),
            details: Some(json!({"receivedDocuments": 10})),
            error: None,
            canceled_by: None,
            view: None,
            awaiting: Vec::new(),
        }
    }

    fn node(
        status: &str,
        indexed: Option<u64>,
        started: Option<&str>,
        finished: Option<&str>,
    ) -> Option<Value> {
        Some(json!({
            "status": status,
            "details": {"receivedDocuments": 4, "indexedDocuments": indexed},
            "startedAt": started,
            "finishedAt": finished,
            "error": if status == "failed" { json!({"message": "boom", "code": "invalid_document_id", "type": "invalid_request", "link": "x"}) } else { Value::Null },
        }))
    }

    #[test]
    fn succeeded_when_every_node_succeeded_with_summed_details() {
        let t = task(2);
        let v = aggregate(
            &t,
            &[
                node(
                    "succeeded",
                    Some(4),
                    Some("2026-01-01T00:00:01Z"),
                    Some("2026-01-01T00:00:02.5Z"),
                ),
                node(
                    "succeeded",
                    Some(6),
                    Some("2026-01-01T00:00:00.5Z"),
                    Some("2026-01-01T00:00:02Z"),
                ),
            ],
        );
        assert_eq!(v["status"], "succeeded");
        assert_eq!(
            v["details"],
            json!({"receivedDocuments": 10, "indexedDocuments": 10})
        );
        assert_eq!(v["startedAt"], "2026-01-01T00:00:00.5Z");
        assert_eq!(v["finishedAt"], "2026-01-01T00:00:02.5Z");
        assert_eq!(v["duration"], "PT2S");
        assert_eq!(v["batchUid"], 7);
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "uid",
                "batchUid",
                "indexUid",
                "status",
                "type",
                "canceledBy",
                "details",
                "error",
                "duration",
                "enqueuedAt",
                "startedAt",
                "finishedAt"
            ]
        );
    }

    #[test]
    fn any_failure_fails_the_task_with_its_error() {
        let v = aggregate(
            &task(2),
            &[
                node(
                    "succeeded",
                    Some(4),
                    Some("2026-01-01T00:00:01Z"),
                    Some("2026-01-01T00:00:02Z"),
                ),
                node(
                    "failed",
                    Some(0),
                    Some("2026-01-01T00:00:01Z"),
                    Some("2026-01-01T00:00:02Z"),
                ),
            ],
        );
        assert_eq!(v["status"], "failed");
        assert_eq!(v["error"]["code"], "invalid_document_id");
    }

    #[test]
    fn in_progress_states() {
        let v = aggregate(
            &task(2),
            &[
                node(
                    "succeeded",
                    Some(4),
                    Some("2026-01-01T00:00:01Z"),
                    Some("2026-01-01T00:00:02Z"),
                ),
                node("enqueued", None, None, None),
            ],
        );
        assert_eq!(v["status"], "processing");
        assert_eq!(v["details"]["indexedDocuments"], Value::Null);
        assert_eq!(v["finishedAt"], Value::Null);
        assert_eq!(v["duration"], Value::Null);
        let v = aggregate(&task(2), &[node("enqueued", None, None, None), None]);
        assert_eq!(v["status"], "enqueued");
        assert_eq!(v["batchUid"], Value::Null);
    }

    #[test]
    fn copies_divide_document_counts() {
        let mut t = task(2);
        t.copies = 2;
        let v = aggregate(
            &t,
            &[
                node(
                    "succeeded",
                    Some(10),
                    Some("2026-01-01T00:00:01Z"),
                    Some("2026-01-01T00:00:02Z"),
                ),
                node(
                    "succeeded",
                    Some(10),
                    Some("2026-01-01T00:00:01Z"),
                    Some("2026-01-01T00:00:02Z"),
                ),
            ],
        );
        assert_eq!(v["details"]["indexedDocuments"], 10);
    }

    #[test]
    fn a_gateway_decided_failure_is_final_at_once() {
        let mut t = task(0);
        t.error = Some(
            json!({"message": "bad", "code": "missing_document_id", "type": "invalid_request", "link": "l"}),
        );
        t.details = Some(json!({"receivedDocuments": 3, "indexedDocuments": 0}));
        let v = aggregate(&t, &[]);
        assert_eq!(v["status"], "failed");
        assert_eq!(
            v["details"],
            json!({"receivedDocuments": 3, "indexedDocuments": 0})
        );
        assert_eq!(v["duration"], "PT0S");
        assert_eq!(v["startedAt"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn durations_match_meilisearch() {
        assert_eq!(
            iso_duration(time::Duration::milliseconds(12)).unwrap(),
            "PT0.012S"
        );
        assert_eq!(
            iso_duration(time::Duration::microseconds(1_000_123)).unwrap(),
            "PT1.000123S"
        );
        assert_eq!(
            iso_duration(time::Duration::nanoseconds(5)).unwrap(),
            "PT0.000000005S"
        );
        assert_eq!(
            iso_duration(time::Duration::seconds(86_402)).unwrap(),
            "P1DT2S"
        );
        assert_eq!(
            iso_duration(time::Duration::seconds(86_400)).unwrap(),
            "P1D"
        );
        assert!(iso_duration(time::Duration::seconds(-1)).is_none());
    }
}

#[cfg(test)]
mod hidden_details {
    use super::*;
    use crate::tasks::model::NodeTaskRef;
    use serde_json::json;

    #[test]
    fn settings_the_gateway_added_are_not_shown() {
        let t = GatewayTask {
            uid: 3,
            index_uid: Some("fresh".into()),
            kind: "settingsUpdate".into(),
            enqueued_at: "2026-01-01T00:00:00Z".into(),
            custom_metadata: None,
            copies: 1,
            node_tasks: vec![NodeTaskRef {
                node: "n0".into(),
                uid: 1,
                internal: false,
            }],
            details: Some(
                json!({ crate::tasks::HIDDEN_DETAILS: ["filterableAttributes", "faceting"] }),
            ),
            error: None,
            canceled_by: None,
            view: None,
            awaiting: Vec::new(),
        };
        let node = json!({
            "status": "succeeded",
            "details": {"sortableAttributes": ["year"], "filterableAttributes": ["_miroir_shard"], "faceting": {"maxValuesPerFacet": 400}},
            "startedAt": "2026-01-01T00:00:01Z", "finishedAt": "2026-01-01T00:00:02Z",
        });
        let v = aggregate(&t, &[Some(node)]);
        assert_eq!(v["details"], json!({"sortableAttributes": ["year"]}));
    }
}
