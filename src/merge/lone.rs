//! The answer of a node that holds every shard, given to the client as the node wrote it
//! less the gateway's own fields: the node saw the client's own request, so its hits,
//! window, totals and facets are already the ones a single node gives.

use super::raw::{skip_ws, string_end, value_end};
use super::search::MergeError;
use crate::shard_tag;

/// `answer` without the gateway's fields: in each hit, in each hit's `_formatted`, and in
/// `facetDistribution` (which names the tag under `facets: ["*"]`), whose facets also keep
/// at most `max_values` values each when given (the client's `maxValuesPerFacet`, where the
/// nodes keep more: a node lists a facet's values in its order, so the first ones are those
/// it would give with the client's setting). Nothing else is touched; a document's nested
/// object that happens to use a reserved name keeps it, as it does in the merges. One
/// forward walk; the bytes between the cuts are copied whole.
pub fn without_reserved(answer: &[u8], max_values: Option<usize>) -> Result<Vec<u8>, MergeError> {
    strip(answer, |splice, root| {
        splice.search_answer(root, max_values)
    })
}

/// [`without_reserved`] for each result of a plain multi-search answer (`{"results":[...]}`),
/// the `n`th cut to `max_values[n]`.
pub fn multi_without_reserved(
    answer: &[u8],
    max_values: &[Option<usize>],
) -> Result<Vec<u8>, MergeError> {
    strip(answer, |splice, root| {
        let buf = splice.buf;
        let mut results_ok = false;
        let end = splice.object(root, &mut |splice, key, value| {
            if key != b"results" || buf.get(value) != Some(&b'[') {
                return None;
            }
            let mut n = 0;
            let end = splice.elements(value, &mut |splice, i| {
                let max = max_values.get(n).copied().flatten();
                n += 1;
                splice.search_answer(i, max)
            });
            results_ok = end.is_some();
            end
        });
        results_ok.then_some(end)
    })
}

/// Runs `walk` over the object at the root of `answer` and copies what it did not cut.
fn strip(
    answer: &[u8],
    walk: impl FnOnce(&mut Splice<'_>, usize) -> Option<usize>,
) -> Result<Vec<u8>, MergeError> {
    let unexpected = || MergeError("a node's search answer has an unexpected shape".into());
    let mut splice = Splice {
        buf: answer,
        out: Vec::with_capacity(answer.len()),
        copied: 0,
    };
    let root = skip_ws(answer, 0);
    if answer.get(root) != Some(&b'{') {
        return Err(unexpected());
    }
    match walk(&mut splice, root) {
        Some(end) if answer.get(end - 1) == Some(&b'}') => {
            splice.out.extend_from_slice(&answer[splice.copied..]);
            Ok(splice.out)
        }
        _ => Err(unexpected()),
    }
}

/// The answer being copied, less the cuts made so far.
struct Splice<'a> {
    buf: &'a [u8],
    out: Vec<u8>,
    /// Where the bytes not yet copied start.
    copied: usize,
}

/// What to do with a member's value: `Some(end)` when the callback walked it itself.
type Inner<'f, 'a> = dyn FnMut(&mut Splice<'a>, &[u8], usize) -> Option<usize> + 'f;

impl<'a> Splice<'a> {
    /// Walks the search answer at `pos`: its hits (each with its `_formatted`) and its
    /// `facetDistribution` (each facet cut to `max_values`). Its end, or `None` when it has
    /// no array of hit objects.
    fn search_answer(&mut self, pos: usize, max_values: Option<usize>) -> Option<usize> {
        let buf = self.buf;
        // Hits seen, all of them objects.
        let mut hits_ok = false;
        let end = self.object(pos, &mut |splice, key, value| match key {
            b"hits" if buf.get(value) == Some(&b'[') => {
                let end = splice.elements(value, &mut |splice, i| {
                    let formatted = &mut |splice: &mut Splice<'a>, key: &[u8], value| {
                        (key == b"_formatted" && buf.get(value) == Some(&b'{'))
                            .then(|| splice.object(value, &mut |_, _, _| None))
                    };
                    (buf.get(i) == Some(&b'{')).then(|| splice.object(i, formatted))
                });
                hits_ok = end.is_some();
                end
            }
            b"facetDistribution" if buf.get(value) == Some(&b'{') => {
                let facet = &mut |splice: &mut Splice<'a>, _: &[u8], value| {
                    let max = max_values.filter(|_| buf.get(value) == Some(&b'{'))?;
                    let mut seen = 0;
                    let beyond = &mut |_: &[u8]| {
                        seen += 1;
                        seen > max
                    };
                    Some(splice.object_dropping(value, beyond, &mut |_, _, _| None))
                };
                Some(splice.object(value, facet))
            }
            _ => None,
        });
        hits_ok.then_some(end)
    }

    /// Walks the array at `pos` (a `[`), each element with `element`; the array's end, or
    /// `None` when `element` refuses one.
    fn elements(
        &mut self,
        pos: usize,
        element: &mut dyn FnMut(&mut Splice<'a>, usize) -> Option<usize>,
    ) -> Option<usize> {
        let buf = self.buf;
        let mut i = skip_ws(buf, pos + 1);
        while buf.get(i).is_some_and(|&b| b != b']') {
            i = skip_ws(buf, element(self, i)?);
            if buf.get(i) == Some(&b',') {
                i = skip_ws(buf, i + 1);
            }
        }
        (buf.get(i) == Some(&b']')).then_some(i + 1)
    }

    /// Leaves `buf[from..to]` out of the copy.
    fn cut(&mut self, from: usize, to: usize) {
        // Cuts come in order on any answer; the clamps only keep a malformed one from
        // panicking (it is refused after the walk).
        let from = from.clamp(self.copied, self.buf.len());
        self.out.extend_from_slice(&self.buf[self.copied..from]);
        self.copied = to.clamp(from, self.buf.len());
    }

    /// Walks the object at `pos` (a `{`), cutting its reserved members (with the comma that
    /// joined each to the others) and handing the others' values to `inner`; returns the
    /// object's end (exclusive).
    fn object(&mut self, pos: usize, inner: &mut Inner<'_, 'a>) -> usize {
        self.object_dropping(pos, &mut |key| shard_tag::is_reserved(key), inner)
    }

    /// [`Splice::object`], cutting the members whose key `drop` says (asked in order).
    fn object_dropping(
        &mut self,
        pos: usize,
        drop: &mut dyn FnMut(&[u8]) -> bool,
        inner: &mut Inner<'_, 'a>,
    ) -> usize {
        let buf = self.buf;
        let mut i = skip_ws(buf, pos + 1);
        let mut kept_any = false;
        // The end of the previous member's value: a cut after a kept member starts there.
        let mut previous_end = pos + 1;
        while buf.get(i) == Some(&b'"') {
            let key_end = string_end(buf, i);
            let value = skip_ws(buf, skip_ws(buf, key_end) + 1);
            let key = &buf[i + 1..key_end.saturating_sub(1).max(i + 1)];
            let reserved = drop(key);
            let end = match reserved {
                true => value_end(buf, value),
                false => inner(self, key, value).unwrap_or_else(|| value_end(buf, value)),
            };
            let mut next = skip_ws(buf, end);
            let more = buf.get(next) == Some(&b',');
            if more {
                next = skip_ws(buf, next + 1);
            }
            if reserved {
                match kept_any {
                    true => self.cut(previous_end, end),
                    false if more => self.cut(i, next),
                    false => self.cut(i, end),
                }
            }
            kept_any |= !reserved;
            previous_end = end;
            i = next;
            if !more {
                break;
            }
        }
        (i + 1).min(buf.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Map, Value};

    /// The answer stripped, written compact as nodes do, and also pretty: both must agree.
    fn stripped(answer: &Value) -> Value {
        stripped_to(answer, None)
    }

    /// [`stripped`], each facet cut to `max` values.
    fn stripped_to(answer: &Value, max: Option<usize>) -> Value {
        let out = without_reserved(answer.to_string().as_bytes(), max).unwrap();
        let pretty = serde_json::to_string_pretty(answer).unwrap();
        let out_pretty = without_reserved(pretty.as_bytes(), max).unwrap();
        let out: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(out, serde_json::from_slice::<Value>(&out_pretty).unwrap());
        out
    }

    /// What the client must see: `answer` with the reserved members of the hits, their
    /// `_formatted` and `facetDistribution` removed, built with serde_json.
    fn expected(answer: &Value) -> Value {
        expected_to(answer, None)
    }

    /// [`expected`], with each facet's first `max` values.
    fn expected_to(answer: &Value, max: Option<usize>) -> Value {
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
            let mut d = clean(d);
            for values in d.values_mut() {
                if let (Value::Object(v), Some(max)) = (values, max) {
                    *v = std::mem::take(v).into_iter().take(max).collect();
                }
            }
            out.insert("facetDistribution".into(), Value::Object(d));
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
    fn facets_are_cut_to_the_clients_values_in_the_nodes_order() {
        let raw = r#"{"hits":[],"facetDistribution":{"_miroir_shard":{"!!!!":3},"country":{"Denmark":310,"Australia":309,"Brazil":308},"size":{"0":75},"none":{}},"facetStats":{"size":{"min":0,"max":39}}}"#;
        let out = without_reserved(raw.as_bytes(), Some(2)).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"hits":[],"facetDistribution":{"country":{"Denmark":310,"Australia":309},"size":{"0":75},"none":{}},"facetStats":{"size":{"min":0,"max":39}}}"#
        );
        let out = without_reserved(raw.as_bytes(), Some(0)).unwrap();
        let out: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            out["facetDistribution"],
            json!({"country": {}, "size": {}, "none": {}})
        );
    }

    #[test]
    fn field_order_and_bytes_of_kept_members_are_the_nodes() {
        let raw = r#"{"hits":[{"id":1,"_miroir_shard":"!!!!","t":"a\"b"},{"_miroir_shard":"!!!%"}],"query":"","limit":20,"offset":0,"estimatedTotalHits":2,"requestUid":"x"}"#;
        let out = without_reserved(raw.as_bytes(), None).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"hits":[{"id":1,"t":"a\"b"},{}],"query":"","limit":20,"offset":0,"estimatedTotalHits":2,"requestUid":"x"}"#
        );
        let empty = r#"{"hits":[],"query":"","processingTimeMs":0,"limit":20,"offset":0,"estimatedTotalHits":0}"#;
        assert_eq!(
            without_reserved(empty.as_bytes(), None).unwrap(),
            empty.as_bytes()
        );
    }

    #[test]
    fn an_answer_of_another_shape_is_refused() {
        for raw in [&b"{\"message\":\"x\"}"[..], b"[]", b"", b"{\"hits\":[1,2]}"] {
            assert!(without_reserved(raw, None).is_err(), "{raw:?}");
        }
        for raw in [
            &b"{\"results\":[{\"message\":\"x\"}]}"[..],
            b"{\"results\":[1]}",
            b"{\"hits\":[]}",
        ] {
            assert!(multi_without_reserved(raw, &[]).is_err(), "{raw:?}");
        }
        assert!(multi_without_reserved(b"{\"results\":[]}", &[]).is_ok());
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
        /// Whatever bytes a node sends, the walk ends without a panic.
        #[test]
        fn any_bytes_are_walked_without_a_panic(raw in prop::collection::vec(prop_oneof![
            Just(b'{'), Just(b'}'), Just(b'['), Just(b']'), Just(b'"'), Just(b'\\'),
            Just(b','), Just(b':'), Just(b' '), any::<u8>(),
        ], 0..64), hits in any::<bool>()) {
            let mut raw = raw;
            if hits {
                raw.splice(0..0, b"{\"hits\":[{\"_miroir_shard\":".iter().copied());
            }
            let _ = without_reserved(&raw, None);
            let _ = without_reserved(&raw, Some(1));
            let _ = multi_without_reserved(&raw, &[Some(0)]);
        }

        /// Whatever the documents hold, the client gets exactly the node's answer less the
        /// gateway's members of each hit, its `_formatted` and the distribution.
        #[test]
        fn only_the_gateway_fields_go(
            hits in prop::collection::vec(hit(), 0..6),
            facets in prop::collection::vec((field(), value()), 0..4),
            total in any::<u32>(),
            max in prop::option::of(0usize..4),
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
            prop_assert_eq!(stripped_to(&answer, max), expected_to(&answer, max));
            // The same answers as the results of a plain multi-search.
            let multi = json!({"results": [answer.clone(), {"hits": []}, answer.clone()]});
            let cuts = [max, Some(0), None];
            let out = multi_without_reserved(multi.to_string().as_bytes(), &cuts).unwrap();
            let out: Value = serde_json::from_slice(&out).unwrap();
            let want = json!({"results": [expected_to(&answer, max), {"hits": []}, expected(&answer)]});
            prop_assert_eq!(out, want);
        }
    }
}
