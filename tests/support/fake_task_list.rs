//! Task and batch listing of the test node (`GET /tasks`, `GET /batches`): filters, date
//! bounds, paging and the errors of Meilisearch v1.50 for each parameter.

use serde_json::{json, Value};

use super::fake_export_request::valid_uid;
use super::fake_meili::{params, positive_integer, unknown_param};
use super::fake_node::{error, json_answer, Answer, NodeState};
use super::http::Message;

/// A node's batches: here one per started task, filtered and paged as its tasks are.
pub(super) fn list_batches(state: &NodeState, req: &Message) -> Answer {
    let answer = list_tasks(state, req);
    if answer.0 != 200 {
        return answer;
    }
    let mut page: Value = serde_json::from_slice(&answer.2).unwrap_or(Value::Null);
    let batches: Vec<Value> = page["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["batchUid"].is_u64())
        .map(|t| {
            let one = |v: &Value| match v.as_str() {
                Some(k) => json!({ k: 1 }),
                None => json!({}),
            };
            json!({
                "uid": t["batchUid"], "progress": null, "details": t["details"],
                "stats": {"totalNbTasks": 1, "status": one(&t["status"]), "types": one(&t["type"]), "indexUids": one(&t["indexUid"])},
                "duration": t["duration"], "startedAt": t["startedAt"], "finishedAt": t["finishedAt"],
                "batchStrategy": "batched all enqueued tasks",
            })
        })
        .collect();
    page["results"] = Value::Array(batches);
    json_answer(200, page)
}

/// `GET /tasks`: newest first (oldest first with `reverse=true`), filtered by `uids`,
/// `batchUids`, `canceledBy`, `types`, `statuses`, `indexUids` and the date bounds; `from` is
/// the first uid to show, `next` the `from` of the next page, `total` counts every match.
pub(super) fn list_tasks(state: &NodeState, req: &Message) -> Answer {
    const KNOWN: [&str; 15] = [
        "limit",
        "from",
        "reverse",
        "batchUids",
        "uids",
        "canceledBy",
        "types",
        "statuses",
        "indexUids",
        "afterEnqueuedAt",
        "beforeEnqueuedAt",
        "afterStartedAt",
        "beforeStartedAt",
        "afterFinishedAt",
        "beforeFinishedAt",
    ];
    const STATUSES: [&str; 5] = ["enqueued", "processing", "succeeded", "failed", "canceled"];
    const TYPES: [&str; 18] = [
        "documentAdditionOrUpdate",
        "documentEdition",
        "documentDeletion",
        "settingsUpdate",
        "indexCreation",
        "indexDeletion",
        "indexUpdate",
        "indexSwap",
        "taskCancelation",
        "taskDeletion",
        "dumpCreation",
        "snapshotCreation",
        "export",
        "upgradeDatabase",
        "indexCompaction",
        "networkTopologyChange",
        "dsrUpdate",
        "dsrClear",
    ];
    let bad = |code: &str, message: String| error(400, code, "invalid_request", &message);
    let quoted = |l: &[&str]| {
        l.iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (mut limit, mut from, mut reverse) = (20u64, None::<u64>, false);
    // (task field, accepted values); `None` for `*`.
    let mut lists: Vec<(&str, Option<Vec<Value>>)> = Vec::new();
    // (task field, after?, bound)
    let mut dates: Vec<(&str, bool, time::OffsetDateTime)> = Vec::new();
    for (k, v) in params(req) {
        let items: Vec<&str> = v.split(',').map(str::trim).collect();
        // Where an item is, in errors: `uids` alone, `uids[1]` in a list.
        let at = |i: usize| {
            if items.len() > 1 {
                format!("{k}[{i}]")
            } else {
                k.clone()
            }
        };
        let star = items.contains(&"*");
        match k.as_str() {
            "limit" | "from" => {
                let code = format!("invalid_task_{k}");
                match positive_integer(&k, &v, &code) {
                    Ok(n) if k == "limit" => limit = n,
                    Ok(n) => from = Some(n),
                    Err(answer) => return answer,
                }
            }
            "reverse" => match v.as_str() {
                "true" => reverse = true,
                "false" => reverse = false,
                _ => {
                    let message = format!("Invalid value in parameter `reverse`: could not parse `{v}` as a boolean, expected either `true` or `false`");
                    return bad("invalid_task_reverse", message);
                }
            },
            "uids" | "batchUids" | "canceledBy" => {
                let (field, code) = match k.as_str() {
                    "uids" => ("uid", "invalid_task_uids"),
                    "batchUids" => ("batchUid", "invalid_task_batch_uids"),
                    _ => ("canceledBy", "invalid_task_canceled_by"),
                };
                if star && items.len() == 1 {
                    continue;
                }
                let mut wanted = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match positive_integer(&at(i), item, code) {
                        Ok(n) => wanted.push(json!(n)),
                        Err(answer) => return answer,
                    }
                }
                lists.push((field, Some(wanted)));
            }
            "statuses" | "types" => {
                let (field, code, allowed, what, known) = if k == "statuses" {
                    (
                        "status",
                        "invalid_task_statuses",
                        &STATUSES[..],
                        "task status",
                        "statuses",
                    )
                } else {
                    (
                        "type",
                        "invalid_task_types",
                        &TYPES[..],
                        "task type",
                        "types",
                    )
                };
                if let Some((i, item)) = items
                    .iter()
                    .enumerate()
                    .find(|(_, x)| **x != "*" && !allowed.contains(x))
                {
                    let message = format!(
                        "Invalid value in parameter `{}`: `{item}` is not a valid {what}. Available {known} are {}.",
                        at(i),
                        quoted(allowed)
                    );
                    return bad(code, message);
                }
                lists.push((
                    field,
                    (!star).then(|| items.iter().map(|x| json!(x)).collect()),
                ));
            }
            "indexUids" => {
                if let Some((i, item)) = items
                    .iter()
                    .enumerate()
                    .find(|(_, x)| **x != "*" && !valid_uid(x))
                {
                    let message = format!("Invalid value in parameter `{}`: `{item}` is not a valid index uid. Index uid can be an integer or a string containing only alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 512 bytes.", at(i));
                    return bad("invalid_index_uid", message);
                }
                lists.push((
                    "indexUid",
                    (!star).then(|| items.iter().map(|x| json!(x)).collect()),
                ));
            }
            name if KNOWN.contains(&name) => {
                let after = name.starts_with("after");
                let field = if name.ends_with("EnqueuedAt") {
                    "enqueuedAt"
                } else if name.ends_with("StartedAt") {
                    "startedAt"
                } else {
                    "finishedAt"
                };
                if v == "*" {
                    continue;
                }
                match task_date(&v, after) {
                    Some(d) => dates.push((field, after, d)),
                    None => {
                        let snake: String = name
                            .chars()
                            .flat_map(|c| {
                                if c.is_ascii_uppercase() {
                                    vec!['_', c.to_ascii_lowercase()]
                                } else {
                                    vec![c]
                                }
                            })
                            .collect();
                        let message = format!("Invalid value in parameter `{name}`: `{v}` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format.");
                        return bad(&format!("invalid_task_{snake}"), message);
                    }
                }
            }
            _ => return unknown_param(&k, &KNOWN),
        }
    }
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    let matching: Vec<&Value> = state
        .tasks
        .iter()
        .filter(|t| !t.is_null())
        .filter(|t| {
            lists
                .iter()
                .all(|(field, wanted)| wanted.as_ref().is_none_or(|w| w.contains(&t[*field])))
                && dates.iter().all(|(field, after, bound)| {
                    t[*field]
                        .as_str()
                        .and_then(|d| time::OffsetDateTime::parse(d, rfc3339).ok())
                        .is_some_and(|d| if *after { d > *bound } else { d < *bound })
                })
        })
        .collect();
    let total = matching.len();
    let mut page: Vec<&Value> = if reverse {
        matching
            .into_iter()
            .filter(|t| from.is_none_or(|f| t["uid"].as_u64().unwrap() >= f))
            .collect()
    } else {
        matching
            .into_iter()
            .rev()
            .filter(|t| from.is_none_or(|f| t["uid"].as_u64().unwrap() <= f))
            .collect()
    };
    let next = page.get(limit as usize).map(|t| t["uid"].clone());
    page.truncate(limit as usize);
    let first = page.first().map(|t| t["uid"].clone());
    json_answer(
        200,
        json!({"results": page, "total": total, "limit": limit, "from": first, "next": next}),
    )
}

/// A task date bound as Meilisearch reads it: RFC 3339, or a day (the next day's start for an
/// `after` bound).
fn task_date(v: &str, after: bool) -> Option<time::OffsetDateTime> {
    if let Ok(d) = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339) {
        return Some(d);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(v, &format).ok()?;
    let start = day.with_time(time::Time::MIDNIGHT).assume_utc();
    Some(if after {
        start + time::Duration::days(1)
    } else {
        start
    })
}
