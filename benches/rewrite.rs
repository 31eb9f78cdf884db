//! Batch rewrite throughput: `miroir::split::split` (the tag and an order placeholder spliced
//! into each document's bytes) then `Batch::stamp` (the order numbers written over the
//! placeholders), beside a baseline that parses to `serde_json::Value`, inserts both fields and
//! re-serializes.
//!
//! The corpus is ~100 MB of generated documents (`common/corpus.rs`), split over 3 nodes and
//! 64 shards with replication factor 1.

#[path = "common/corpus.rs"]
mod corpus;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use miroir::routing::shard_of;
use miroir::split::{split, Format, KeyChoice, Placement};
use serde_json::Value;

const CORPUS_BYTES: usize = 100 * 1024 * 1024;

/// The naive approach: a tree per document, then a serializer per node.
fn baseline(input: &[u8], place: Placement<'_>) -> Vec<Vec<u8>> {
    let docs: Vec<serde_json::Map<String, Value>> = serde_json::from_slice(input).unwrap();
    let mut per_node: Vec<Vec<&serde_json::Map<String, Value>>> = vec![Vec::new(); place.nodes];
    let mut tagged = Vec::with_capacity(docs.len());
    for d in &docs {
        let id = match &d["id"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let shard = shard_of(id.as_bytes(), place.shards);
        let mut d = d.clone();
        d.insert(
            "_miroir_shard".into(),
            Value::from(miroir::shard_tag::value(shard)),
        );
        let order = miroir::shard_tag::order::encode(1 << 60);
        d.insert(
            miroir::shard_tag::order::FIELD.into(),
            Value::from(String::from_utf8_lossy(&order).into_owned()),
        );
        tagged.push((shard, d));
    }
    for (shard, d) in &tagged {
        for &n in place.owners(*shard) {
            per_node[n].push(d);
        }
    }
    per_node
        .iter()
        .map(|docs| serde_json::to_vec(docs).unwrap())
        .collect()
}

fn bench(c: &mut Criterion) {
    let docs = corpus::documents(CORPUS_BYTES);
    let json = serde_json::to_vec(&docs).unwrap();
    let ndjson: Vec<u8> = docs
        .iter()
        .flat_map(|d| {
            let mut line = serde_json::to_vec(d).unwrap();
            line.push(b'\n');
            line
        })
        .collect();
    let csv = corpus::csv(&docs);
    drop(docs);
    let table: Vec<usize> = (0..64).map(|s| s % 3).collect();
    let place = Placement {
        shards: 64,
        nodes: 3,
        copies: 1,
        table: &table,
    };

    let mut g = c.benchmark_group("rewrite");
    g.sample_size(10);
    for (name, input, format) in [
        ("json", &json, Format::Json),
        ("ndjson", &ndjson, Format::Ndjson),
        ("csv", &csv, Format::Csv { delimiter: b',' }),
    ] {
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_function(
            format!("split {name} ({} MB)", input.len() / 1_000_000),
            |b| {
                b.iter(|| {
                    let mut batch = split(input, format, KeyChoice::Known("id"), place).unwrap();
                    let orders: Vec<u64> = (0..batch.ids.len() as u64).map(|i| i << 10).collect();
                    batch.stamp(&orders);
                    batch
                })
            },
        );
    }
    g.throughput(Throughput::Bytes(json.len() as u64));
    g.bench_function("baseline serde_json parse + reserialize json", |b| {
        b.iter(|| baseline(&json, place))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
