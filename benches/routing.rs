//! Per-request routing costs: classifying a path and hashing a primary key to its shard.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::Method;
use miroir::routes::classify;
use miroir::routing::{owners, shard_of};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("routing");
    g.bench_function("classify /indexes/{uid}/search", |b| {
        b.iter(|| {
            classify(
                black_box(&Method::POST),
                black_box("/indexes/movies/search"),
            )
        })
    });
    g.bench_function("classify settings sub-route", |b| {
        b.iter(|| {
            classify(
                black_box(&Method::PUT),
                black_box("/indexes/movies/settings/synonyms"),
            )
        })
    });
    g.bench_function("shard_of 12-byte id", |b| {
        b.iter(|| shard_of(black_box(b"movie-123456"), 64))
    });
    let ids: Vec<String> = (0..16).map(|i| format!("node-{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    g.bench_function("rendezvous owners of one shard over 16 nodes", |b| {
        b.iter(|| owners(black_box(&refs), black_box(7), 2))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
