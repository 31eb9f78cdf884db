//! The answer of a node that holds every shard, given to the client as the node wrote it
//! less the gateway's own fields: the node saw the client's own request, so its hits,
//! window, totals and facets are already the ones a single node gives.

use super::raw::{members_and_end, search_answer_members, skip_ws, write_members_without};
use super::search::MergeError;
use crate::shard_tag;

/// `answer` without the gateway's fields: in each hit, in each hit's `_formatted`, and in
/// `facetDistribution` (which names the tag under `facets: ["*"]`). Nothing else is touched;
/// a document's nested object that happens to use a reserved name keeps it, as it does in
/// the merges.
pub fn without_reserved(answer: &[u8]) -> Result<Vec<u8>, MergeError> {
    let unexpected = || MergeError("a node's search answer has an unexpected shape".into());
    let (top, first_hit) = search_answer_members(answer).ok_or_else(unexpected)?;
    let hits_end = top[0].value.1;
    let mut out = Vec::with_capacity(answer.len());
    out.extend_from_slice(&answer[..first_hit]);
    let mut i = skip_ws(answer, first_hit);
    let mut first = true;
    while answer.get(i) == Some(&b'{') {
        let (members, end) = members_and_end(answer, i);
        if !first {
            out.push(b',');
        }
        first = false;
        let drop = |key: &[u8]| shard_tag::is_reserved(key);
        let nested = |key: &[u8]| key == b"_formatted";
        write_members_without(answer, (i, end), &members, &drop, &nested, &mut out);
        i = skip_ws(answer, end);
        if answer.get(i) == Some(&b',') {
            i = skip_ws(answer, i + 1);
        }
    }
    if i + 1 != hits_end || answer[i] != b']' {
        return Err(unexpected());
    }
    out.push(b']');
    for m in &top[1..] {
        out.push(b',');
        out.extend_from_slice(&answer[m.start..m.value.0]);
        let key = &answer[m.key.0..m.key.1];
        if key == b"facetDistribution" && answer.get(m.value.0) == Some(&b'{') {
            let (facets, end) = members_and_end(answer, m.value.0);
            let drop = |key: &[u8]| shard_tag::is_reserved(key);
            write_members_without(
                answer,
                (m.value.0, end),
                &facets,
                &drop,
                &|_| false,
                &mut out,
            );
        } else {
            out.extend_from_slice(&answer[m.value.0..m.value.1]);
        }
    }
    out.push(b'}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Map, Value};

    fn stripped(answer: &Value) -> Value {
        let out = without_reserved(answer.to_string().as_bytes()).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    /// What the client must see: `answer` with the reserved members of the hits, their
    /// `_formatted` and `facetDistribution` removed, built with serde_json.
    fn expected(answer: &Value) -> Value {
        let clean = |o: &Map<String, Value>| -> Map<String, Value> {
            o.iter()
                .filter(|(k, _)| !shard_tag::is_reserved(k.as_bytes()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let mut out = answer.as_object().unwrap().clone();
        let hits: Vec<Value> = answer["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                let mut h = clean(h.as_object().unwrap());
                if let Some(Value::Object(f)) = h.get("_formatted") {
                    let f = clean(f);
                    h.insert("_formatted".into(), Value::Object(f));
                }
                Value::Object(h)
            })
            .collect();
        out.insert("hits".into(), Value::Array(hits));
        if let Some(Value::Object(d)) = answer.get("facetDistribution") {
            out.insert("facetDistribution".into(), Value::Object(clean(d)));
        }
        Value::Object(out)
    }

    #[test]
    fn a_real_answer_loses_the_gateway_fields_and_nothing_else() {
        let answer = json!({
            "hits": [
                {"id": 3, "_miroir_shard": "!!,}", "_miroir_order": "*)!((?", "title": "Classic",
                 "nested": {"_miroir_shard": "kept, it is the document's"},
                 "_formatted": {"id": "3", "_miroir_shard": "!!,}", "_miroir_order": "*)!((?",
                                "title": "<em>Classic</em>"}},
                {"_miroir_shard": "!!%§", "id": 6, "_rankingScore": 0.5}
            ],
            "query": "classic",
            "processingTimeMs": 2,
            "limit": 2,
            "offset": 0,
            "estimatedTotalHits": 19369,
            "facetDistribution": {"_miroir_shard": {"!!!!": 330}, "brand": {"Acme": 2381}},
            "facetStats": {"price": {"min": 1.0, "max": 2.0}},
            "requestUid": "01a23d5c-4345-7f32-b952-c3727e9acbc0"
        });
        let out = stripped(&answer);
        assert_eq!(out, expected(&answer));
        assert_eq!(
            out["hits"][0]["nested"]["_miroir_shard"],
            "kept, it is the document's"
        );
        assert!(out["hits"][1].get("_miroir_shard").is_none());
        assert_eq!(out["facetDistribution"], json!({"brand": {"Acme": 2381}}));
    }

    #[test]
    fn field_order_and_bytes_of_kept_members_are_the_nodes() {
        let raw = r#"{"hits":[{"id":1,"_miroir_shard":"!!!!","t":"a\"b"},{"_miroir_shard":"!!!%"}],"query":"","limit":20,"offset":0,"estimatedTotalHits":2,"requestUid":"x"}"#;
        let out = without_reserved(raw.as_bytes()).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"hits":[{"id":1,"t":"a\"b"},{}],"query":"","limit":20,"offset":0,"estimatedTotalHits":2,"requestUid":"x"}"#
        );
        let empty = r#"{"hits":[],"query":"","processingTimeMs":0,"limit":20,"offset":0,"estimatedTotalHits":0}"#;
        assert_eq!(
            without_reserved(empty.as_bytes()).unwrap(),
            empty.as_bytes()
        );
    }

    #[test]
    fn an_answer_of_another_shape_is_refused() {
        for raw in [&b"{\"message\":\"x\"}"[..], b"[]", b"", b"{\"hits\":[1,2]}"] {
            assert!(without_reserved(raw).is_err(), "{raw:?}");
        }
    }

    fn field() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("_miroir_shard".to_string()),
            Just("_miroir_order".to_string()),
            Just("_formatted".to_string()),
            "[a-z_]{1,8}",
        ]
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(Value::from),
            "[ -~§é\"\\\\{}\\[\\],:]{0,12}".prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            Just(Value::Null),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((field(), inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn hit() -> impl Strategy<Value = Value> {
        prop::collection::vec((field(), value()), 0..6)
            .prop_map(|kv| Value::Object(kv.into_iter().collect()))
    }

    proptest! {
        /// Whatever the documents hold, the client gets exactly the node's answer less the
        /// gateway's members of each hit, its `_formatted` and the distribution.
        #[test]
        fn only_the_gateway_fields_go(
            hits in prop::collection::vec(hit(), 0..6),
            facets in prop::collection::vec((field(), value()), 0..4),
            total in any::<u32>(),
        ) {
            let mut answer = Map::new();
            answer.insert("hits".into(), Value::Array(hits));
            answer.insert("query".into(), Value::from("q"));
            answer.insert("estimatedTotalHits".into(), Value::from(total));
            answer.insert(
                "facetDistribution".into(),
                Value::Object(facets.into_iter().collect()),
            );
            let answer = Value::Object(answer);
            prop_assert_eq!(stripped(&answer), expected(&answer));
        }
    }
}
