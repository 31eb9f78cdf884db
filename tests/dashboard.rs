//! The Grafana dashboard only queries metrics the gateway exports.

use std::collections::BTreeSet;

#[test]
fn every_dashboard_query_uses_an_exported_metric() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/grafana-dashboard.json"
    ))
    .unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    // Labelled families appear once they have a series: give each one.
    let metrics = miroir::metrics::Metrics::new();
    metrics
        .requests
        .with_label_values(&["one_node", "GET", "200"])
        .inc();
    metrics
        .request_duration
        .with_label_values(&["one_node"])
        .observe(0.001);
    metrics.node_up.with_label_values(&["n"]).set(1);
    metrics.node_requests.with_label_values(&["n", "ok"]).inc();
    metrics.hints_pending.with_label_values(&["n"]).set(0);
    metrics
        .rebalance_moves
        .with_label_values(&["copying"])
        .set(0);
    metrics
        .rebalance_documents
        .with_label_values(&["export"])
        .inc();
    // The search cache and the shared state register their own families.
    let _cache = miroir::cache::SearchCache::new(Default::default(), &metrics);
    let state = miroir::state::StateMetrics::new(&metrics);
    state.seconds.observe(0.001);
    let dir = std::env::temp_dir().join(format!("miroir-dashboard-{}", std::process::id()));
    let tasks = std::sync::Arc::new(miroir::tasks::TaskService::open(&dir).unwrap());
    let aliases = miroir::aliases::AliasService::new(tasks, 10, &metrics);
    aliases.count_resolution("a");
    aliases.count_flip("a");
    let exported = String::from_utf8(metrics.render()).unwrap();
    let mut names = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("miroir_") {
                    names.insert(word.to_string());
                }
            }
        }
    }
    assert!(names.len() >= 8, "{names:?}");
    for name in names {
        let base = name
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(
            exported.contains(&format!("# TYPE {base} ")),
            "the dashboard queries `{name}`, which is not exported"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
