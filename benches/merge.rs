//! Merge cost: `miroir::merge` (hits kept as bytes, injected fields spliced out) beside a
//! baseline that parses every shard answer into `serde_json::Value`, sorts the hits, removes
//! the injected fields and re-serializes.

#[path = "common/corpus.rs"]
#[allow(dead_code)]
mod corpus;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use miroir::merge::facets::FacetSettings;
use miroir::merge::lone::without_reserved;
use miroir::merge::{merge_search, HitPlan, SearchPlan, ShardAnswer};
use serde_json::{json, Value};

/// A shard answer with `hits` realistic hits (documents of the corpus with score details
/// for the default ranking rules), best first.
fn shard_answer(rng: &mut corpus::Rng, shard: u64, hits: usize, full: bool) -> Vec<u8> {
    let mut list: Vec<(f64, Value)> = (0..hits)
        .map(|i| {
            let mut doc = corpus::document(rng, shard * 100_000 + i as u64);
            if !full {
                // What `attributesToRetrieve` leaves of a document in a typical result list.
                doc = json!({"id": doc["id"], "name": doc["name"], "color": doc["color"], "age": doc["age"]});
            }
            let words = 1 + rng.below(3);
            let typo = rng.below(2);
            let proximity = (1 + rng.below(8)) as f64 / 8.0;
            let attribute = (1 + rng.below(4)) as f64 / 4.0;
            let score = words as f64 / 3.0 * 0.5 + proximity * 0.3 + attribute * 0.2;
            doc["_miroir_shard"] = json!("!!!]");
            doc["_rankingScore"] = json!(score);
            doc["_rankingScoreDetails"] = json!({
                "words": {"order": 0, "matchingWords": words, "maxMatchingWords": 3, "score": words as f64 / 3.0},
                "typo": {"order": 1, "typoCount": typo, "maxTypoCount": 1, "score": 1.0 - typo as f64 * 0.5},
                "proximity": {"order": 2, "score": proximity},
                "attribute": {"order": 3, "attributeRankingOrderScore": attribute, "queryWordDistanceScore": 1.0, "score": attribute},
                "exactness": {"order": 4, "matchType": "noExactMatch", "matchingWords": 0, "maxMatchingWords": 3, "score": 0.25}
            });
            (score, doc)
        })
        .collect();
    list.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap());
    let hits: Vec<Value> = list.into_iter().map(|(_, d)| d).collect();
    serde_json::to_vec(&json!({
        "hits": hits, "query": "fast search", "processingTimeMs": 2, "limit": 20, "offset": 0,
        "estimatedTotalHits": 4321, "requestUid": "01a20000-0000-7000-8000-000000000000"
    }))
    .unwrap()
}

fn plan(limit: usize) -> SearchPlan {
    SearchPlan {
        offset: 0,
        limit,
        page: None,
        hits: HitPlan::default(),
        distinct: None,
        max_total_hits: 100_000,
        facets: FacetSettings::default(),
    }
}

/// The naive merge: trees, a global sort by `_rankingScore`, fields removed, re-serialized.
fn baseline(bodies: &[Vec<u8>], limit: usize) -> Vec<u8> {
    let mut all: Vec<Value> = Vec::new();
    let mut first: Option<Value> = None;
    for b in bodies {
        let mut v: Value = serde_json::from_slice(b).unwrap();
        all.append(v["hits"].as_array_mut().unwrap());
        first.get_or_insert(v);
    }
    all.sort_by(|a, b| {
        b["_rankingScore"]
            .as_f64()
            .partial_cmp(&a["_rankingScore"].as_f64())
            .unwrap()
    });
    all.truncate(limit);
    for h in &mut all {
        let o = h.as_object_mut().unwrap();
        o.remove("_miroir_shard");
        o.remove("_rankingScore");
        o.remove("_rankingScoreDetails");
    }
    let mut out = first.unwrap();
    out["hits"] = Value::Array(all);
    serde_json::to_vec(&out).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut rng = corpus::Rng::new(7);
    let mut g = c.benchmark_group("merge");
    for (shards, hits, limit, full) in [
        (8usize, 20usize, 20usize, false),
        (8, 20, 20, true),
        (3, 1000, 1000, true),
    ] {
        let bodies: Vec<Vec<u8>> = (0..shards as u64)
            .map(|s| shard_answer(&mut rng, s, hits, full))
            .collect();
        let bytes: usize = bodies.iter().map(Vec::len).sum();
        g.throughput(criterion::Throughput::Bytes(bytes as u64));
        let size = if full { "whole documents" } else { "4 fields" };
        let p = plan(limit);
        g.bench_function(
            format!(
                "miroir {shards} shards x {hits} hits, {size}, {} KB",
                bytes / 1000
            ),
            |b| {
                b.iter(|| {
                    let mut answers: Vec<ShardAnswer<'_>> = bodies
                        .iter()
                        .map(|b| ShardAnswer::parse(b, None).unwrap())
                        .collect();
                    merge_search(black_box(&mut answers), &p, 0).unwrap()
                })
            },
        );
        g.bench_function(
            format!(
                "baseline {shards} shards x {hits} hits, {size}, {} KB",
                bytes / 1000
            ),
            |b| b.iter(|| baseline(black_box(&bodies), limit)),
        );
    }
    // One node holds every shard: its answer (recorded from Meilisearch 1.50, 20 hits with
    // ranking details the client did not ask for) is taken in its order, fields removed.
    let lone = include_bytes!("load/fixtures/search.json");
    g.throughput(criterion::Throughput::Bytes(lone.len() as u64));
    let p = plan(20);
    g.bench_function("miroir 1 shard x 20 hits, lone answer, 15 KB", |b| {
        b.iter(|| {
            let answer = ShardAnswer::parse(black_box(lone), None).unwrap().alone();
            merge_search(&mut [answer], &p, 0).unwrap()
        })
    });
    g.bench_function("baseline 1 shard x 20 hits, lone answer, 15 KB", |b| {
        b.iter(|| baseline(black_box(&[lone.to_vec()]), 20))
    });
    // The same answer on the lone path (the node got the client's own request): only the
    // gateway's fields are cut out.
    g.bench_function("miroir 1 shard x 20 hits, lone path, 15 KB", |b| {
        b.iter(|| without_reserved(black_box(lone), None).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
