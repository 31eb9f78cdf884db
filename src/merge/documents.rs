//! Document browsing (`GET /indexes/{uid}/documents`, `POST .../documents/fetch`) merged:
//! each shard's documents kept as bytes, ordered by the `sort` rules when given (stable, so
//! each shard keeps its own order among equal keys), the client's window taken, `total`
//! summed, the shard tag and the fields asked only for sorting removed.

use std::cmp::Ordering;

use serde_json::Value;

use super::raw::{elements, members, write_object_without};
use super::score::compare_sort_values;
use super::search::MergeError;
use crate::shard_tag;

/// What the merge must know of a browse request.
#[derive(Debug, Clone, Default)]
pub struct BrowsePlan {
    pub offset: usize,
    pub limit: usize,
    /// `(field, ascending)` rules, in order.
    pub sort: Vec<(String, bool)>,
    /// Fields the gateway added to `fields` only to sort.
    pub strip: Vec<String>,
}

/// A value at a dotted path of a document.
fn field<'v>(doc: &'v Value, path: &str) -> &'v Value {
    if let Some(v) = doc.get(path) {
        return v;
    }
    let mut cur = doc;
    for part in path.split('.') {
        cur = match cur.get(part) {
            Some(v) => v,
            None => return &Value::Null,
        };
    }
    cur
}

/// Merges the shards' `{"results": [...], "total": n}` answers.
pub fn merge_documents(answers: &[&[u8]], plan: &BrowsePlan) -> Result<Vec<u8>, MergeError> {
    // Each document stays as bytes; only the sort fields are read.
    let mut docs: Vec<(usize, (usize, usize), Vec<Value>)> = Vec::new();
    let mut total = 0u64;
    for (a, resp) in answers.iter().enumerate() {
        let buf = *resp;
        for m in members(buf, 0) {
            match &buf[m.key.0..m.key.1] {
                b"results" => {
                    for range in elements(buf, m.value.0) {
                        let keys: Vec<Value> = if plan.sort.is_empty() {
                            Vec::new()
                        } else {
                            let doc: Value = serde_json::from_slice(&buf[range.0..range.1])
                                .unwrap_or(Value::Null);
                            plan.sort
                                .iter()
                                .map(|(f, _)| field(&doc, f).clone())
                                .collect()
                        };
                        docs.push((a, range, keys));
                    }
                }
                b"total" => {
                    total += std::str::from_utf8(&buf[m.value.0..m.value.1])
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                        .unwrap_or(0)
                }
                _ => {}
            }
        }
    }
    if !plan.sort.is_empty() {
        // A stable sort keeps each shard's own order among equal keys.
        docs.sort_by(|x, y| {
            for (i, (_, asc)) in plan.sort.iter().enumerate() {
                match compare_sort_values(*asc, &x.2[i], &y.2[i]) {
                    Ordering::Equal => continue,
                    o => return o.reverse(),
                }
            }
            Ordering::Equal
        });
    }
    let drop = |k: &[u8]| shard_tag::is_tag(k) || plan.strip.iter().any(|s| s.as_bytes() == k);
    let mut out = Vec::from(&b"{\"results\":["[..]);
    for (n, (a, range, _)) in docs.iter().skip(plan.offset).take(plan.limit).enumerate() {
        if n > 0 {
            out.push(b',');
        }
        write_object_without(answers[*a], *range, &drop, &|_| false, &mut out);
    }
    out.extend_from_slice(
        format!(
            "],\"offset\":{},\"limit\":{},\"total\":{total}}}",
            plan.offset, plan.limit
        )
        .as_bytes(),
    );
    Ok(out)
}
