use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::routing::shard_of;

/// Three nodes, 16 shards; shard s is owned by node s % 3 and, with `copies` 2, also (s+1) % 3.
fn table(copies: usize) -> Vec<usize> {
    (0..16u32)
        .flat_map(|s| (0..copies).map(move |k| (s as usize + k) % 3))
        .collect()
}

fn place(t: &[usize], copies: usize) -> Placement<'_> {
    Placement {
        shards: 16,
        nodes: 3,
        copies,
        table: t,
    }
}

fn docs_of(body: &[u8], format: Format) -> Vec<Value> {
    match format {
        Format::Json if body.is_empty() => vec![],
        Format::Json => serde_json::from_slice::<Vec<Value>>(body).unwrap(),
        Format::Ndjson => serde_json::Deserializer::from_slice(body)
            .into_iter::<Value>()
            .map(Result::unwrap)
            .collect(),
        Format::Csv { delimiter } => {
            if body.is_empty() {
                return vec![];
            }
            let mut r = csv::ReaderBuilder::new()
                .delimiter(delimiter)
                .from_reader(body);
            let h = r.headers().unwrap().clone();
            r.records()
                .map(|rec| {
                    let rec = rec.unwrap();
                    Value::Object(
                        h.iter()
                            .zip(rec.iter())
                            .map(|(k, v)| (k.to_string(), json!(v)))
                            .collect(),
                    )
                })
                .collect()
        }
    }
}

fn id_shard(v: &Value) -> u32 {
    let id = match &v["id"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    shard_of(id.as_bytes(), 16)
}

/// Every document lands, tagged with its shard and stamped with its order, exactly once on
/// each owner and nowhere else.
fn check_split(input: &[u8], format: Format, originals: &[Value], copies: usize) -> Batch {
    let t = table(copies);
    let mut batch = split(input, format, KeyChoice::Known("id"), place(&t, copies)).unwrap();
    assert_eq!(batch.documents, originals.len());
    assert_eq!(batch.ids.len(), originals.len());
    let orders: Vec<u64> = (0..originals.len() as u64).map(|i| 1000 + i * 7).collect();
    batch.stamp(&orders);
    let mut seen = vec![0usize; originals.len()];
    for node in 0..3 {
        let docs = docs_of(&batch.bodies[node], format);
        assert_eq!(docs.len(), batch.counts[node]);
        for mut d in docs {
            let tag = d
                .as_object_mut()
                .unwrap()
                .shift_remove(crate::shard_tag::FIELD)
                .unwrap();
            let order = d
                .as_object_mut()
                .unwrap()
                .shift_remove(crate::shard_tag::order::FIELD)
                .unwrap();
            let shard = id_shard(&d);
            assert_eq!(tag, crate::shard_tag::value(shard));
            assert!(place(&t, copies).owners(shard).contains(&node));
            let i = originals
                .iter()
                .position(|o| *o == d)
                .expect("an input document");
            let order = crate::shard_tag::order::decode(order.as_str().unwrap().as_bytes());
            assert_eq!(order, Some(orders[i]));
            assert_eq!(shard_of(batch.ids.get(i).as_bytes(), 16), shard);
            seen[i] += 1;
        }
    }
    assert!(seen.iter().all(|&n| n == copies), "{seen:?}");
    batch
}

#[test]
fn json_documents_are_tagged_and_routed() {
    let docs = vec![
        json!({"id": 1, "title": "Carol", "nested": {"a": [1, 2, {"b": "c"}]}}),
        json!({"id": "two", "title": "Wonder \"Woman\"", "genres": ["Action", "Adventure"]}),
        json!({"id": 3, "title": "Life of Pi ü 中文", "score": -1.5e3}),
        json!({"title": "id last", "id": "4-x_y"}),
    ];
    let input = serde_json::to_vec_pretty(&docs).unwrap();
    check_split(&input, Format::Json, &docs, 1);
    check_split(&input, Format::Json, &docs, 2);
    // The bytes of each document are kept: the node body holds the original text.
    let t = table(1);
    let batch = split(
        br#"[ {"id":1,  "x" : "a\nb"} ]"#,
        Format::Json,
        KeyChoice::Known("id"),
        place(&t, 1),
    )
    .unwrap();
    let body: Vec<u8> = batch.bodies.concat();
    let text = String::from_utf8(body).unwrap();
    assert!(text.ends_with(r#""id":1,  "x" : "a\nb"}]"#), "{text}");
    // A single object is one document, as on Meilisearch.
    let one = check_split(br#"{"id": 7}"#, Format::Json, &[json!({"id": 7})], 1);
    assert_eq!(one.documents, 1);
}

#[test]
fn ndjson_and_csv_documents_are_tagged_and_routed() {
    let docs = vec![
        json!({"id": 1, "t": "a"}),
        json!({"id": "b2", "t": "b"}),
        json!({"id": 3, "t": "c"}),
    ];
    let ndjson: Vec<u8> = docs
        .iter()
        .flat_map(|d| format!("{d}\n").into_bytes())
        .collect();
    check_split(&ndjson, Format::Ndjson, &docs, 2);
    let csv_docs: Vec<Value> = ["1", "b2", "3"]
        .iter()
        .zip(["a, with comma", "b \"quoted\"", "c\nmultiline"])
        .map(|(id, t)| json!({"id": id, "t": t}))
        .collect();
    let csv = b"id,t\n1,\"a, with comma\"\r\nb2,\"b \"\"quoted\"\"\"\n3,\"c\nmultiline\"";
    check_split(csv, Format::Csv { delimiter: b',' }, &csv_docs, 1);
    let semi = b"id;t\n1;a, with comma\nb2;\"b \"\"quoted\"\"\"\n3;\"c\nmultiline\"\n";
    check_split(semi, Format::Csv { delimiter: b';' }, &csv_docs, 2);
}

#[test]
fn integer_and_string_ids_route_alike() {
    let t = table(1);
    let a = split(
        br#"[{"id":12}]"#,
        Format::Json,
        KeyChoice::Known("id"),
        place(&t, 1),
    )
    .unwrap();
    let b = split(
        br#"[{"id":"12"}]"#,
        Format::Json,
        KeyChoice::Known("id"),
        place(&t, 1),
    )
    .unwrap();
    assert_eq!(a.counts, b.counts);
    let c = split(
        b"id:number\n12\n",
        Format::Csv { delimiter: b',' },
        KeyChoice::Known("id"),
        place(&t, 1),
    )
    .unwrap();
    assert_eq!(a.counts, c.counts);
}

fn doc_error(input: &[u8], format: Format, key: KeyChoice<'_>) -> DocumentError {
    let t = table(1);
    match split(input, format, key, place(&t, 1)) {
        Err(SplitError::Document(e)) => e,
        other => panic!("expected a document error, got {other:?}"),
    }
}

fn payload_error(input: &[u8], format: Format) -> PayloadError {
    let t = table(1);
    match split(input, format, KeyChoice::Known("id"), place(&t, 1)) {
        Err(SplitError::Payload(e)) => e,
        other => panic!("expected a payload error, got {other:?}"),
    }
}

#[test]
fn document_errors_carry_meilisearch_messages() {
    let e = doc_error(
        br#"[{"id":1},{"docid":2,"content":"x"}]"#,
        Format::Json,
        KeyChoice::Known("id"),
    );
    assert_eq!(e.code(), "missing_document_id");
    assert_eq!(
        e.message(),
        r#"Document doesn't have a `id` attribute: `{"docid":2,"content":"x"}`."#
    );
    let e = doc_error(
        br#"[{"id":"foo & bar"}]"#,
        Format::Json,
        KeyChoice::Known("id"),
    );
    assert_eq!(e.code(), "invalid_document_id");
    assert!(
        e.message()
            .starts_with(r#"Document identifier `"foo & bar"` is invalid."#),
        "{}",
        e.message()
    );
    let e = doc_error(br#"[{"id":1.5}]"#, Format::Json, KeyChoice::Known("id"));
    assert_eq!(e, DocumentError::InvalidId("1.5".into()));
    let e = doc_error(
        br#"[{"id":1,"_miroir_shard":"x"}]"#,
        Format::Json,
        KeyChoice::Known("id"),
    );
    assert_eq!(e.code(), "miroir_reserved_field");
    let e = doc_error(
        b"id,t:number\n,3\n",
        Format::Csv { delimiter: b',' },
        KeyChoice::Known("id"),
    );
    assert_eq!(e, DocumentError::InvalidId("null".into()));
}

#[test]
fn the_primary_key_is_inferred_like_meilisearch() {
    let t = table(1);
    let b = split(
        br#"[{"title":"a","movie_Id":5},{"movie_Id":6}]"#,
        Format::Json,
        KeyChoice::Infer,
        place(&t, 1),
    )
    .unwrap();
    assert_eq!(b.primary_key, "movie_Id");
    assert_eq!(
        doc_error(br#"[{"title":"a"}]"#, Format::Json, KeyChoice::Infer),
        DocumentError::NoPrimaryKeyCandidate
    );
    assert_eq!(
        doc_error(b"[]", Format::Json, KeyChoice::Infer),
        DocumentError::NoPrimaryKeyCandidate
    );
    let e = doc_error(
        br#"[{"object_id":1,"id":2,"uid":3}]"#,
        Format::Json,
        KeyChoice::Infer,
    );
    assert_eq!(
        e.message(),
        "The primary key inference failed as the engine found 3 fields ending with `id` in their names: 'id' and 'object_id'. Please specify the primary key manually using the `primaryKey` query parameter."
    );
    let b = split(
        b"name,uuid\nx,1\n",
        Format::Csv { delimiter: b',' },
        KeyChoice::Infer,
        place(&t, 1),
    )
    .unwrap();
    assert_eq!(b.primary_key, "uuid");
    // A nested key is followed into objects, as Meilisearch's selector does.
    let b = split(
        br#"[{"a":{"b":"k1"}},{"a.b":"k2"}]"#,
        Format::Json,
        KeyChoice::Known("a.b"),
        place(&t, 1),
    )
    .unwrap();
    assert_eq!(b.documents, 2);
}

#[test]
fn payload_errors_carry_meilisearch_messages() {
    assert_eq!(
        payload_error(b"", Format::Json),
        PayloadError::Missing(Format::Json)
    );
    assert_eq!(
        payload_error(br#"[{"id": 1}, {id: 2}]"#, Format::Json),
        PayloadError::Malformed(
            "The `json` payload provided is malformed. `Couldn't serialize document value: key must be a string at line 1 column 14`.".into()
        )
    );
    assert_eq!(
        payload_error(br#""abc""#, Format::Json),
        PayloadError::Malformed(
            "The `json` payload provided is malformed. `Couldn't serialize document value: data are neither an object nor a list of objects`.".into()
        )
    );
    assert_eq!(
        payload_error(b"{\"id\":1}\n{\"id\":2", Format::Ndjson),
        PayloadError::Malformed(
            "The `ndjson` payload provided is malformed. `Couldn't serialize document value: EOF while parsing an object at line 2 column 7`.".into()
        )
    );
    assert_eq!(
        payload_error(b"id,t\n1,a,b\n", Format::Csv { delimiter: b',' }),
        PayloadError::Malformed(
            "The `csv` payload provided is malformed: `CSV error: record 1 (line: 2, byte: 5): found record with 3 fields, but the previous record has 2 fields`.".into()
        )
    );
    assert_eq!(
        payload_error(b"id,n:number\n1,doggo\n", Format::Csv { delimiter: b',' }),
        PayloadError::Malformed(
            "The `csv` payload provided is malformed: `Error parsing number \"doggo\" at line 1: invalid float literal`.".into()
        )
    );
    assert!(
        matches!(payload_error(b"[1]", Format::Json), PayloadError::Internal(m) if m.contains("expected a map"))
    );
    // A malformed payload wins over a bad document earlier in it.
    assert!(matches!(
        payload_error(br#"[{"x":1},{"id":"#, Format::Json),
        PayloadError::Malformed(_)
    ));
}

fn arb_doc() -> impl Strategy<Value = Value> {
    let id = prop_oneof![
        (0u64..1_000_000).prop_map(Value::from),
        "[a-zA-Z0-9_-]{1,12}".prop_map(Value::from),
    ];
    let text = prop_oneof![
        "\\PC{0,30}".prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
        prop::collection::vec("[a-z ]{0,8}", 0..3).prop_map(|v| json!(v)),
    ];
    (id, prop::collection::btree_map("[a-z]{1,6}", text, 0..4)).prop_map(|(id, fields)| {
        let mut o = serde_json::Map::new();
        for (k, v) in fields {
            if k != "id" {
                o.insert(k, v);
            }
        }
        o.insert("id".into(), id);
        Value::Object(o)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Every input document appears exactly once per owner, identical but for the tag.
    #[test]
    fn every_document_lands_once_per_owner(
        docs in prop::collection::vec(arb_doc(), 0..40),
        copies in 1usize..=2,
        pretty in any::<bool>(),
    ) {
        let mut seen = std::collections::HashSet::new();
        let docs: Vec<Value> = docs.into_iter().filter(|d| seen.insert(d["id"].to_string())).collect();
        let json = if pretty { serde_json::to_vec_pretty(&docs).unwrap() } else { serde_json::to_vec(&docs).unwrap() };
        check_split(&json, Format::Json, &docs, copies);
        let ndjson: Vec<u8> = docs.iter().flat_map(|d| format!("{d}\n").into_bytes()).collect();
        if !docs.is_empty() {
            check_split(&ndjson, Format::Ndjson, &docs, copies);
        }
    }

    /// Arbitrary bytes never panic, and what is accepted is valid JSON for serde_json too.
    #[test]
    fn hostile_input_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200), ndjson in any::<bool>()) {
        let t = table(1);
        let format = if ndjson { Format::Ndjson } else { Format::Json };
        if let Ok(batch) = split(&bytes, format, KeyChoice::Known("id"), place(&t, 1)) {
            for body in &batch.bodies {
                if !body.is_empty() {
                    docs_of(body, format);
                }
            }
        }
        let _ = split(&bytes, Format::Csv { delimiter: b',' }, KeyChoice::Infer, place(&t, 1));
    }

    #[test]
    fn json_like_garbage_never_panics(s in "[\\[\\]{}\":,0-9a-z\\\\ ]{0,60}") {
        let t = table(1);
        let _ = split(s.as_bytes(), Format::Json, KeyChoice::Infer, place(&t, 1));
        let _ = split(s.as_bytes(), Format::Ndjson, KeyChoice::Known("id"), place(&t, 1));
    }
}

#[test]
fn array_elements_that_are_not_objects_answer_as_a_node_does() {
    // Measured on Meilisearch v1.50: the element's own error as a bare 500 when it is last,
    // else the parser's "trailing characters" where the next element starts.
    let malformed = |m: &str| {
        PayloadError::Malformed(format!(
            "The `json` payload provided is malformed. `Couldn't serialize document value: {m}`."
        ))
    };
    assert_eq!(
        payload_error(b"[1,2,3]", Format::Json),
        malformed("trailing characters at line 1 column 4")
    );
    assert_eq!(
        payload_error(b"[1, 2]", Format::Json),
        malformed("trailing characters at line 1 column 5")
    );
    assert_eq!(
        payload_error(br#"[{"id":1}, "x", 3]"#, Format::Json),
        malformed("trailing characters at line 1 column 17")
    );
    assert_eq!(
        payload_error(br#"[{"id":1},2]"#, Format::Json),
        PayloadError::Internal(
            "invalid type: integer `2`, expected a map at line 1 column 1".into()
        )
    );
    assert_eq!(
        payload_error(br#"["a"]"#, Format::Json),
        PayloadError::Internal(
            "invalid type: string \"a\", expected a map at line 1 column 3".into()
        )
    );
}

#[test]
fn values_a_node_fails_on_while_indexing_fail_the_task() {
    // Measured on Meilisearch v1.50: `202`, then the task fails with `internal`.
    let deep = format!(
        r#"[{{"id":1,"a":{}{}}}]"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let e = doc_error(deep.as_bytes(), Format::Json, KeyChoice::Known("id"));
    assert_eq!((e.code(), e.kind()), ("internal", "internal"));
    assert_eq!(
        e.message(),
        "internal: recursion limit exceeded at line 1 column 128."
    );
    let e = doc_error(
        br#"[{"id":2,"a":"\ud800"}]"#,
        Format::Json,
        KeyChoice::Known("id"),
    );
    assert_eq!(
        e.message(),
        "internal: unexpected end of hex escape at line 1 column 8."
    );
}

#[test]
fn csv_quoted_fields_keep_their_newlines() {
    let t = table(1);
    let input = b"id,title\n1,\"first line\nsecond line\"\n2,plain\n3,\"a \"\"quoted\"\" word\"\n";
    let batch = split(
        input,
        Format::Csv { delimiter: b',' },
        KeyChoice::Known("id"),
        place(&t, 1),
    )
    .unwrap();
    let mut rows: Vec<Vec<String>> = Vec::new();
    for body in &batch.bodies {
        let mut reader = csv::Reader::from_reader(&body[..]);
        for r in reader.records() {
            let r = r.unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)));
            rows.push(r.iter().map(str::to_string).collect());
        }
    }
    rows.sort();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0][1], "first line\nsecond line");
    assert_eq!(rows[2][1], "a \"quoted\" word");
    assert!(
        rows.iter().all(|r| r.len() == 4
            && shard_tag::parse(&r[2]).is_some()
            && shard_tag::order::decode(r[3].as_bytes()).is_some()),
        "{rows:?}"
    );
}

#[test]
fn a_body_too_large_for_a_node_goes_in_parts_in_order() {
    let docs: Vec<String> = (0..10)
        .map(|i| format!(r#"{{"id":{i},"t":"xxxxxxxx"}}"#))
        .collect();
    let json = format!("[{}]", docs.join(","));
    let parts = parts(json.clone().into_bytes(), 10, Format::Json, 60);
    assert!(parts.len() > 1);
    assert!(parts.iter().all(|(p, _)| p.len() <= 60));
    let mut back = Vec::new();
    for (p, n) in &parts {
        let v: Vec<Value> = serde_json::from_slice(p).unwrap();
        assert_eq!(v.len(), *n);
        back.extend(v);
    }
    assert_eq!(back, serde_json::from_str::<Vec<Value>>(&json).unwrap());

    let ndjson = docs.join("\n") + "\n";
    let parts = parts_of(&ndjson, Format::Ndjson, 60);
    assert_eq!(parts.concat(), ndjson);

    let csv = "id,t,_miroir_shard\n1,\"a\nb\",\"!!!!\"\n2,x,\"!!!!\"\n3,y,\"!!!!\"\n";
    let parts = parts_of(csv, Format::Csv { delimiter: b',' }, 40);
    assert!(parts.len() > 1);
    for p in &parts {
        assert!(p.starts_with("id,t,_miroir_shard\n"), "{p:?}");
    }
    let rows: String = parts
        .iter()
        .map(|p| p.trim_start_matches("id,t,_miroir_shard\n"))
        .collect();
    assert_eq!(rows, csv.trim_start_matches("id,t,_miroir_shard\n"));
    // Under the limit: untouched.
    assert_eq!(parts_of(&json, Format::Json, 1 << 20), [json]);
}

fn parts_of(body: &str, format: Format, max: usize) -> Vec<String> {
    let count = body.lines().count();
    parts(body.as_bytes().to_vec(), count, format, max)
        .into_iter()
        .map(|(p, _)| String::from_utf8(p).unwrap())
        .collect()
}
