//! Facet counts against real Meilisearch, when a `meilisearch` binary is available: a facet
//! with more values than `maxValuesPerFacet` is counted as one node counts it (the nodes keep
//! more values than the client asked for; see `src/facet_depth.rs`).

use crate::support;

use serde_json::{json, Value};
use support::compare::compare;
use support::meili::{self, ReferenceAndFleet};
use support::meili_api::Api;

const KEY: &str = "miroir-differential-key-0123456789";

/// Facet counts stay exact when a facet has more values than `maxValuesPerFacet`: the nodes
/// keep more than the client asked for (hidden), the merge truncates to the client's value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facet_counts_beyond_max_values_per_facet_match_a_single_node() {
    facet_counts(
        "facet_counts_beyond_max_values_per_facet_match_a_single_node",
        3,
    )
    .await;
}

/// Over one node (the lone path) the node's own lists are cut to the client's value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facet_counts_over_one_node_match_a_single_node() {
    facet_counts("facet_counts_over_one_node_match_a_single_node", 1).await;
}

async fn facet_counts(test: &str, fleet: usize) {
    let Some(bin) = meili::binary() else {
        meili::skip_notice(test);
        return;
    };
    let ReferenceAndFleet {
        single,
        nodes,
        gateway: gw,
    } = ReferenceAndFleet::start_with(&bin, KEY, fleet).await;
    let mut a = Api::new(single.addr, Some(KEY));
    let mut b = Api::new(gw.addr, Some(KEY));
    // 15 countries, skewed, spread unevenly over the shards by id.
    let countries = [
        "Australia",
        "Brazil",
        "Canada",
        "Denmark",
        "Egypt",
        "France",
        "Ghana",
        "Hungary",
        "India",
        "Japan",
        "Kenya",
        "Laos",
        "Mexico",
        "Norway",
        "Oman",
    ];
    let docs: Vec<Value> = (0..3000u64)
        .map(|i| {
            let c = countries[((i * i + 7 * i) % 97 % 15) as usize];
            json!({"id": i, "name": format!("shop {i}"), "country": c, "size": i % 40})
        })
        .collect();
    let settings = json!({
        "filterableAttributes": ["country", "size"],
        "faceting": {"maxValuesPerFacet": 10, "sortFacetValuesBy": {"country": "count", "*": "alpha"}}
    });
    for api in [&mut a, &mut b] {
        let t = api
            .write(
                "PATCH",
                "/indexes/shops/settings",
                Some("application/json"),
                settings.to_string().as_bytes(),
            )
            .await;
        assert_eq!(t["status"], "succeeded", "{t}");
        assert_eq!(t["details"]["faceting"]["maxValuesPerFacet"], 10, "{t}");
        let t = api
            .write(
                "POST",
                "/indexes/shops/documents?primaryKey=id",
                Some("application/json"),
                Value::from(docs.clone()).to_string().as_bytes(),
            )
            .await;
        assert_eq!(t["status"], "succeeded", "{t}");
    }
    let mut failures = Vec::new();
    let probes = [
        (
            "POST",
            "/indexes/shops/search",
            Some(json!({"q": "", "facets": ["country"], "limit": 0})),
        ),
        (
            "POST",
            "/indexes/shops/search",
            Some(json!({"q": "shop", "facets": ["country", "size"], "filter": "size < 30"})),
        ),
        (
            "GET",
            "/indexes/shops/search?q=&facets=country,size&limit=0",
            None,
        ),
        (
            "POST",
            "/multi-search",
            Some(json!({"queries": [
                {"indexUid": "shops", "q": "", "facets": ["country", "size"], "limit": 0},
                {"indexUid": "shops", "q": "shop 1", "limit": 0},
                {"indexUid": "shops", "q": "", "facets": ["size"], "filter": "size > 3", "limit": 0}
            ]})),
        ),
        (
            "POST",
            "/indexes/shops/search",
            Some(json!({"q": "", "facets": ["*"], "limit": 0})),
        ),
        (
            "POST",
            "/indexes/shops/facet-search",
            Some(json!({"facetName": "country", "facetQuery": ""})),
        ),
        (
            "POST",
            "/indexes/shops/facet-search",
            Some(json!({"facetName": "size"})),
        ),
        ("GET", "/indexes/shops/settings", None),
        ("GET", "/indexes/shops/settings/faceting", None),
    ];
    for (method, path, body) in &probes {
        let bytes = body
            .as_ref()
            .map(|b| b.to_string().into_bytes())
            .unwrap_or_default();
        let ct = body.as_ref().map(|_| "application/json");
        let ra = a.call(method, path, ct, &bytes).await;
        let rb = b.call(method, path, ct, &bytes).await;
        let what = format!("{method} {path} {}", body.clone().unwrap_or_default());
        assert_eq!(
            ra.status,
            rb.status,
            "{what}: {} / {}",
            ra.text(),
            rb.text()
        );
        let (ja, jb) = (ra.json(), rb.json());
        if let Err(e) = compare(&ja, &jb, Some((0, 20)), false, &what) {
            failures.push(e);
        }
        // The values in the node's order too (`compare` sees objects as unordered).
        let distributions = |j: &Value| -> Vec<String> {
            let results = j["results"].as_array().cloned().unwrap_or_default();
            std::iter::once(j)
                .chain(results.iter())
                .map(|r| r["facetDistribution"].to_string())
                .collect()
        };
        let (fa, fb) = (distributions(&ja), distributions(&jb));
        if fa != fb {
            failures.push(format!(
                "{what}: facet order: single {fa:?}\n miroir {fb:?}"
            ));
        }
    }
    // The nodes themselves keep more values than the client asked for.
    let mut node = Api::new(nodes[0].addr, Some(KEY));
    let on_node = node.get("/indexes/shops/settings/faceting").await.json();
    assert!(
        on_node["maxValuesPerFacet"].as_u64().unwrap() > 10,
        "{on_node}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
