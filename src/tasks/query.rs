//! The filters and paging of `GET /tasks` (and of task cancelation and deletion).
//!
//! Syntax errors are Meilisearch's business: the gateway has a node validate the query first
//! and passes its error on, so this parser only reads queries already known to be valid.

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, Time};

use crate::query_string::pairs;

/// Parsed task filters; `None` means "not filtered".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskFilter {
    pub limit: usize,
    pub from: Option<u64>,
    pub reverse: bool,
    pub uids: Option<Vec<u64>>,
    pub batch_uids: Option<Vec<u64>>,
    pub canceled_by: Option<Vec<u64>>,
    pub types: Option<Vec<String>>,
    pub statuses: Option<Vec<String>>,
    pub index_uids: Option<Vec<String>>,
    /// (field, after?, bound): `enqueuedAt` after/before a date.
    pub dates: Vec<(&'static str, bool, OffsetDateTime)>,
    /// Only tasks in a batch (started), for `GET /batches`.
    pub batched: bool,
}

/// Query parameters that select tasks (paging excluded).
pub const FILTER_PARAMS: &[&str] = &[
    "uids",
    "batchUids",
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

fn list(value: &str) -> Option<Vec<String>> {
    if value.trim() == "*" {
        return None;
    }
    Some(
        value
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

fn numbers(value: &str) -> Option<Vec<u64>> {
    list(value).map(|v| v.iter().filter_map(|s| s.parse().ok()).collect())
}

/// Meilisearch's date bounds: a bare date `after` means from the next day on, `before` means
/// before that day.
fn date(value: &str, after: bool) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(value, &Rfc3339) {
        return Some(t);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = Date::parse(value, &format).ok()?;
    let day = if after { day.next_day()? } else { day };
    Some(day.with_time(Time::MIDNIGHT).assume_utc())
}

impl TaskFilter {
    pub fn parse(query: &str) -> TaskFilter {
        let mut f = TaskFilter {
            limit: 20,
            ..TaskFilter::default()
        };
        for (k, v) in pairs(query) {
            match k.as_str() {
                "limit" => f.limit = v.parse().unwrap_or(20),
                "from" => f.from = v.parse().ok(),
                "reverse" => f.reverse = v == "true",
                "uids" => f.uids = numbers(&v),
                "batchUids" => f.batch_uids = numbers(&v),
                "canceledBy" => f.canceled_by = numbers(&v),
                "types" => f.types = list(&v),
                "statuses" => f.statuses = list(&v),
                "indexUids" => f.index_uids = list(&v),
                other => {
                    let bound = match other {
                        "afterEnqueuedAt" => Some(("enqueuedAt", true)),
                        "beforeEnqueuedAt" => Some(("enqueuedAt", false)),
                        "afterStartedAt" => Some(("startedAt", true)),
                        "beforeStartedAt" => Some(("startedAt", false)),
                        "afterFinishedAt" => Some(("finishedAt", true)),
                        "beforeFinishedAt" => Some(("finishedAt", false)),
                        _ => None,
                    };
                    if let Some((field, after)) = bound {
                        if let Some(t) = (v.trim() != "*").then(|| date(&v, after)).flatten() {
                            f.dates.push((field, after, t));
                        }
                    }
                }
            }
        }
        f
    }

    /// Whether the query names any selecting parameter (deletion and cancelation need one).
    pub fn has_filters(query: &str) -> bool {
        pairs(query)
            .iter()
            .any(|(k, _)| FILTER_PARAMS.contains(&k.as_str()))
    }

    /// Whether the task `view` passes every filter.
    pub fn matches(&self, view: &Value) -> bool {
        let num = |field: &str| view.get(field).and_then(Value::as_u64);
        let text = |field: &str| view.get(field).and_then(Value::as_str);
        let in_nums = |set: &Option<Vec<u64>>, field: &str| {
            set.as_ref()
                .is_none_or(|s| num(field).is_some_and(|n| s.contains(&n)))
        };
        let in_texts = |set: &Option<Vec<String>>, field: &str| {
            set.as_ref()
                .is_none_or(|s| text(field).is_some_and(|t| s.iter().any(|x| x == t)))
        };
        (!self.batched || num("batchUid").is_some())
            && in_nums(&self.uids, "uid")
            && in_nums(&self.batch_uids, "batchUid")
            && in_nums(&self.canceled_by, "canceledBy")
            && in_texts(&self.types, "type")
            && in_texts(&self.statuses, "status")
            && in_texts(&self.index_uids, "indexUid")
            && self.dates.iter().all(|(field, after, bound)| {
                match text(field).and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok()) {
                    Some(t) if *after => t > *bound,
                    Some(t) => t < *bound,
                    None => false,
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_lists_stars_and_dates() {
        let f = TaskFilter::parse("limit=5&from=9&statuses=succeeded%2Cfailed&types=*&indexUids=movies&afterEnqueuedAt=2026-01-01");
        assert_eq!(f.limit, 5);
        assert_eq!(f.from, Some(9));
        assert_eq!(f.statuses, Some(vec!["succeeded".into(), "failed".into()]));
        assert_eq!(f.types, None);
        let v = json!({"uid": 3, "status": "failed", "type": "indexCreation", "indexUid": "movies", "enqueuedAt": "2026-01-02T00:00:01Z"});
        assert!(f.matches(&v));
        let v2 = json!({"uid": 3, "status": "failed", "type": "indexCreation", "indexUid": "movies", "enqueuedAt": "2026-01-01T12:00:00Z"});
        assert!(!f.matches(&v2), "after a bare date means from the next day");
        assert!(!TaskFilter::parse("uids=1,2").matches(&v));
        assert!(TaskFilter::has_filters("limit=1&uids=2"));
        assert!(!TaskFilter::has_filters("limit=1"));
    }
}
