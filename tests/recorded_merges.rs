//! The merge, fed with shard answers recorded from real Meilisearch nodes, must give what a
//! single real node answered to the same search (recorded alongside): plain searches
//! (`tests/fixtures/merge`) and federated multi-searches (`tests/fixtures/federated`). Runs
//! everywhere, no Meilisearch needed; the fixtures come from `tests/differential.rs` with
//! `MIROIR_RECORD_FIXTURES=tests/fixtures/merge`.

use crate::support;

use std::collections::BTreeMap;

use miroir::merge::{
    merge_federated, merge_search, prepare, prepare_federated, MergeSettings, ShardAnswer,
};
use serde_json::Value;
use support::compare::compare;

#[test]
fn recorded_shard_answers_merge_into_the_single_node_answer() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/merge");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 30, "only {} fixtures", files.len());
    let mut failures = Vec::new();
    let mut reordered = 0;
    for file in &files {
        let fixture: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        let settings = MergeSettings::from_settings(&fixture["settings"]);
        let request = fixture["request"].as_object().unwrap();
        let prepared = prepare(request, &settings).expect("a request the merge reads");
        let bodies: Vec<Vec<u8>> = fixture["shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| serde_json::to_vec(s).unwrap())
            .collect();
        let mut shards: Vec<ShardAnswer<'_>> = bodies
            .iter()
            .map(|b| ShardAnswer::parse(b, prepared.plan.distinct.as_deref()).unwrap())
            .collect();
        let merged: Value =
            serde_json::from_slice(&merge_search(&mut shards, &prepared.plan, 0).unwrap()).unwrap();
        let window = match prepared.plan.page {
            Some((page, per_page)) => ((page.max(1) - 1) * per_page, per_page),
            None => (prepared.plan.offset, prepared.plan.limit),
        };
        let what = format!("{} {}", file.display(), fixture["request"]);
        match compare(
            &fixture["expected"],
            &merged,
            Some(window),
            prepared.plan.distinct.is_some(),
            &what,
        ) {
            Ok(n) => reordered += n,
            Err(e) => failures.push(e),
        }
    }
    eprintln!(
        "{} recorded merges, {} failed, {reordered} tied hits reordered",
        files.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn fixtures(kind: &str) -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn recorded_federated_answers_merge_into_the_single_node_answer() {
    let files = fixtures("federated");
    assert!(files.len() >= 8, "only {} fixtures", files.len());
    let mut failures = Vec::new();
    let mut reordered = 0;
    for file in &files {
        let fixture: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        let settings: BTreeMap<String, MergeSettings> = fixture["settings"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(index, s)| (index.clone(), MergeSettings::from_settings(s)))
            .collect();
        let request = fixture["request"].as_object().unwrap();
        let prepared = prepare_federated(request, &settings).expect("a request the merge reads");
        let bodies: Vec<Vec<u8>> = fixture["shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| serde_json::to_vec(s).unwrap())
            .collect();
        let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
        let merged: Value =
            serde_json::from_slice(&merge_federated(&refs, None, &prepared.plan, 0).unwrap())
                .unwrap();
        let federation = &prepared.plan.federation;
        let window = miroir::merge::FederatedPlan::window(federation);
        let distinct = federation.contains_key("distinct");
        let what = format!("{} {}", file.display(), fixture["request"]);
        match compare(&fixture["expected"], &merged, Some(window), distinct, &what) {
            Ok(n) => reordered += n,
            Err(e) => failures.push(e),
        }
    }
    eprintln!(
        "{} recorded federated merges, {} failed, {reordered} tied hits reordered",
        files.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
