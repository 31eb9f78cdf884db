//! Order numbers for a batch's documents (see [`crate::shard_tag::order`]): a document the
//! nodes already hold keeps its number, read back from the nodes that get it again; a new one
//! takes the next number, in the batch's order.

use ahash::AHashMap;
use http::Method;
use serde_json::{json, Value};

use crate::cluster::Cluster;
use crate::shard_tag::order::{self, OrderClock};
use crate::split::{canonical_id, Batch};
use crate::transport::NodeRequest;

/// Ids asked of a node per request.
const IDS_PER_FETCH: usize = 10_000;

/// Stamps every document of `batch` with its order number. `existing`: whether `index`
/// exists with the batch's primary key (otherwise no document can be stored yet).
pub async fn stamp(
    cluster: &Cluster<'_>,
    clock: &OrderClock,
    index: &str,
    existing: bool,
    batch: &mut Batch,
) {
    let known = if existing {
        stored_orders(cluster, index, batch).await
    } else {
        AHashMap::new()
    };
    let base = clock.take(batch.ids.len() as u64);
    let orders = assign(batch.ids.iter(), &known, base);
    batch.stamp(&orders);
}

/// Each document's number: the stored one, else its first occurrence's in this batch (a node
/// keeps a document where it first put it), else `base` plus its position.
pub fn assign<'a>(
    ids: impl ExactSizeIterator<Item = &'a str>,
    known: &AHashMap<String, u64>,
    base: u64,
) -> Vec<u64> {
    let mut first: AHashMap<&str, u64> = AHashMap::with_capacity(ids.len());
    ids.enumerate()
        .map(|(i, id)| match known.get(id) {
            Some(n) => *n,
            None => *first.entry(id).or_insert(base + i as u64),
        })
        .collect()
}

/// The numbers the documents of `batch` already have on the nodes about to get them (the
/// record of a moving shard is not a node: its documents are asked of their owner). A node
/// that is down or behind on its missed writes is not asked (a write must not wait on it),
/// nor is one that does not answer: documents no node reports count as new (a later browse
/// places them last, nothing else changes).
async fn stored_orders(cluster: &Cluster<'_>, index: &str, batch: &Batch) -> AHashMap<String, u64> {
    let topology = cluster.topology;
    let askable = |n: usize| {
        topology
            .nodes
            .get(n)
            .is_some_and(|node| cluster.health.is_up(node) && !cluster.health.is_lagging(node))
    };
    let mut per_node: AHashMap<usize, Vec<&str>> = AHashMap::new();
    for slot in batch.slots.iter().filter(|s| askable(s.node)) {
        per_node
            .entry(slot.node)
            .or_default()
            .push(batch.ids.get(slot.doc));
    }
    let path = format!("/indexes/{index}/documents/fetch");
    let mut requests = Vec::new();
    for (node, mut ids) in per_node {
        ids.sort_unstable();
        ids.dedup();
        for chunk in ids.chunks(IDS_PER_FETCH) {
            let body = json!({
                "ids": chunk,
                "fields": [&batch.primary_key, order::FIELD],
                "limit": chunk.len(),
            });
            let req = NodeRequest {
                method: Method::POST,
                path: path.clone(),
                headers: vec![(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                )],
                body: body.to_string().into(),
            };
            requests.push((node, cluster.own_request(req)));
        }
    }
    let mut known = AHashMap::new();
    for (node, answer) in cluster.send_each(requests).await {
        let body = match answer {
            Ok(resp) if resp.status == 200 => resp.body,
            Ok(resp) => {
                log::warn!(
                    "index {index}: node {} answered {} to the order read-back",
                    cluster.topology.nodes[node].id,
                    resp.status
                );
                continue;
            }
            Err(e) => {
                log::warn!(
                    "index {index}: node {} gave no order read-back: {e}",
                    cluster.topology.nodes[node].id
                );
                continue;
            }
        };
        read_orders(&body, &batch.primary_key, &mut known);
    }
    known
}

/// The `(id, number)` pairs of a fetch answer, the smallest number kept per id.
fn read_orders(body: &[u8], primary_key: &str, known: &mut AHashMap<String, u64>) {
    let Ok(answer) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    for doc in answer["results"].as_array().into_iter().flatten() {
        let id = primary_key
            .split('.')
            .try_fold(doc, |v, part| v.get(part))
            .or_else(|| doc.get(primary_key));
        let (Some(id), Some(n)) = (
            id.and_then(|v| canonical_id(v).ok()),
            doc[order::FIELD]
                .as_str()
                .and_then(|s| order::decode(s.as_bytes())),
        ) else {
            continue;
        };
        known
            .entry(id)
            .and_modify(|m: &mut u64| *m = (*m).min(n))
            .or_insert(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn stored_documents_keep_their_number_and_repeats_take_the_first() {
        let known = AHashMap::from_iter([("b".to_string(), 7)]);
        let list = ids(&["a", "b", "c", "a"]);
        let got = assign(list.iter().map(String::as_str), &known, 100);
        assert_eq!(got, vec![100, 7, 102, 100]);
    }

    #[test]
    fn fetch_answers_are_read_by_canonical_id() {
        let value = |n| String::from_utf8(order::encode(n).to_vec()).unwrap();
        let body = json!({"results": [
            {"id": 1, order::FIELD: value(5)},
            {"id": "x", order::FIELD: value(9)},
            {"id": "y"},
            {"id": 1, order::FIELD: value(3)},
        ]});
        let mut known = AHashMap::new();
        read_orders(body.to_string().as_bytes(), "id", &mut known);
        assert_eq!(known.get("1"), Some(&3));
        assert_eq!(known.get("x"), Some(&9));
        assert_eq!(known.get("y"), None);
        let nested = json!({"results": [{"a": {"b": "z"}, order::FIELD: value(4)}]});
        read_orders(nested.to_string().as_bytes(), "a.b", &mut known);
        assert_eq!(known.get("z"), Some(&4));
    }
}
