//! Document browsing (`GET /indexes/{uid}/documents`, `POST .../documents/fetch`) merged:
//! each shard's documents kept as bytes, ordered by the `sort` rules when given (stable, so
//! each shard keeps its own order among equal keys), else interleaved by their insertion
//! order (each shard's list kept in its own order); the client's window taken, `total` summed,
//! the gateway's fields and the fields asked only for sorting removed.

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

/// The insertion-order number of the document object at `pos` (0 for one stored without).
fn order_of(buf: &[u8], pos: usize) -> u64 {
    members(buf, pos)
        .iter()
        .find(|m| &buf[m.key.0..m.key.1] == shard_tag::order::FIELD.as_bytes())
        .and_then(|m| {
            let v = &buf[m.value.0..m.value.1];
            shard_tag::order::decode(v.strip_prefix(b"\"")?.strip_suffix(b"\"")?)
        })
        .unwrap_or(0)
}

/// The first `n` documents of the shards' lists (each in its node's order, grouped by list)
/// interleaved by their order number: each step takes the smallest head.
fn interleave<T>(docs: Vec<(usize, T, Vec<Value>)>, n: usize) -> Vec<(usize, T, Vec<Value>)> {
    let key = |d: &(usize, T, Vec<Value>)| d.2.first().and_then(Value::as_u64).unwrap_or(0);
    let mut lists: Vec<std::collections::VecDeque<(usize, T, Vec<Value>)>> = Vec::new();
    for d in docs {
        match lists.last_mut() {
            Some(l) if l.back().is_some_and(|b| b.0 == d.0) => l.push_back(d),
            _ => lists.push(std::collections::VecDeque::from([d])),
        }
    }
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let next = lists
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.front().map(|d| (key(d), i)))
            .min();
        match next.and_then(|(_, i)| lists[i].pop_front()) {
            Some(d) => out.push(d),
            None => break,
        }
    }
    out
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
                            vec![Value::from(order_of(buf, range.0))]
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
    if plan.sort.is_empty() {
        docs = interleave(docs, plan.offset + plan.limit);
    } else {
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
    let drop = |k: &[u8]| shard_tag::is_reserved(k) || plan.strip.iter().any(|s| s.as_bytes() == k);
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::shard_tag::order;

    /// A node's answer listing `(id, order number)` documents, in that order.
    fn answer(docs: &[(u64, u64)]) -> Vec<u8> {
        let results: Vec<Value> = docs
            .iter()
            .map(|(id, n)| {
                let value = String::from_utf8(order::encode(*n).to_vec()).unwrap();
                json!({crate::shard_tag::FIELD: "!!!!", "id": id, order::FIELD: value})
            })
            .collect();
        serde_json::to_vec(&json!({"results": results, "total": docs.len()})).unwrap()
    }

    fn ids(merged: &[u8]) -> Vec<u64> {
        let v: Value = serde_json::from_slice(merged).unwrap();
        let results = v["results"].as_array().unwrap();
        assert!(results.iter().all(|d| d.as_object().unwrap().len() == 1));
        results.iter().map(|d| d["id"].as_u64().unwrap()).collect()
    }

    fn page(answers: &[Vec<u8>], offset: usize, limit: usize) -> Vec<u64> {
        let refs: Vec<&[u8]> = answers.iter().map(Vec::as_slice).collect();
        let plan = BrowsePlan {
            offset,
            limit,
            ..Default::default()
        };
        ids(&merge_documents(&refs, &plan).unwrap())
    }

    #[test]
    fn without_sort_documents_interleave_by_insertion_order() {
        let a = answer(&[(1, 10), (4, 40), (5, 50)]);
        let b = answer(&[(2, 20), (3, 30), (6, 60)]);
        assert_eq!(page(&[a.clone(), b.clone()], 0, 10), [1, 2, 3, 4, 5, 6]);
        assert_eq!(page(&[a.clone(), b.clone()], 2, 3), [3, 4, 5]);
        // A document stored without a number (written around the gateway) comes first on its
        // node's list; a node's list keeps its own order whatever the numbers say.
        let c = answer(&[(9, 0), (7, 70), (8, 15)]);
        assert_eq!(page(&[a, b, c], 0, 10), [9, 1, 2, 3, 4, 5, 6, 7, 8]);
    }

    proptest! {
        /// Any split of an insertion sequence over nodes (each listing its part in order)
        /// merges back to the sequence, and pages cut it without overlap or gap.
        #[test]
        fn pages_of_the_merge_are_the_insertion_order(
            owners in prop::collection::vec(0usize..4, 0..60),
            limit in 1usize..13,
        ) {
            let mut parts: Vec<Vec<(u64, u64)>> = vec![Vec::new(); 4];
            for (i, node) in owners.iter().enumerate() {
                parts[*node].push((i as u64, 1000 + 3 * i as u64));
            }
            let answers: Vec<Vec<u8>> = parts.iter().map(|p| answer(p)).collect();
            let all: Vec<u64> = (0..owners.len() as u64).collect();
            prop_assert_eq!(page(&answers, 0, 100), all.clone());
            let mut paged = Vec::new();
            for offset in (0..owners.len()).step_by(limit) {
                paged.extend(page(&answers, offset, limit));
            }
            prop_assert_eq!(paged, all);
        }
    }
}
