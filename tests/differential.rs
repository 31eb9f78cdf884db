//! Differential reads against real Meilisearch, when a `meilisearch` binary is available:
//! the same documents and settings in one node and in Miroir over three nodes, then the same
//! queries to both, answers compared field by field.
//!
//! Allowed differences, each justified in the README: `processingTimeMs` and `requestUid`
//! (per request), and the order of hits whose ranking is equal in every rule (a node breaks
//! such ties by its internal document id, which shards do not share); where such a tie
//! straddles the end of the window, which of the tied hits are included.

mod support;

use std::time::Instant;

use serde_json::{json, Value};
use support::compare::compare;
use support::meili::{self, MeiliNode, ReferenceAndFleet};
use support::meili_api::Api;

const KEY: &str = "miroir-differential-key-0123456789";

/// One request of the corpus.
struct Probe {
    method: &'static str,
    path: String,
    body: Option<Value>,
}

fn search(index: &str, body: Value) -> Probe {
    Probe {
        method: "POST",
        path: format!("/indexes/{index}/search"),
        body: Some(body),
    }
}

fn queries() -> Vec<Probe> {
    let mut out = Vec::new();
    let texts = [
        "",
        "red",
        "red shoe",
        "rde shoe",
        "wireles speaker",
        "vintge camera",
        "phone",
        "smartphone",
        "lamp modern",
        "\"leather jacket\"",
        "-red shoe",
        "guitar -black",
        "acme",
        "zenith",
        "öko",
        "1",
        "12",
        "2020",
        "19",
        "ch",
        "ca",
        "w",
        "durable lightweight premium",
        "blue sofa by Hooli",
        "kettle blender",
        "bicycle",
        "quiet powerful",
        "backpak",
        "wodden table",
        "compact",
    ];
    // Plain text queries, with details shown so ties are known.
    for q in texts {
        out.push(search(
            "products",
            json!({"q": q, "showRankingScoreDetails": true}),
        ));
    }
    // Every parameter family.
    let mut variants = vec![
        json!({"q": "red", "filter": "price < 100", "showRankingScoreDetails": true}),
        json!({"q": "shoe", "filter": ["category = Clothing", ["brand = Acme", "brand = Globex"]], "showRankingScoreDetails": true}),
        json!({"q": "", "filter": "year >= 2010 AND rating > 3", "sort": ["price:asc"], "showRankingScoreDetails": true}),
        json!({"q": "phone", "sort": ["price:desc"], "showRankingScoreDetails": true}),
        json!({"q": "", "sort": ["year:desc", "price:asc"], "showRankingScoreDetails": true, "limit": 50}),
        json!({"q": "lamp", "sort": ["title:asc"], "showRankingScoreDetails": true}),
        json!({"q": "", "sort": ["_geoPoint(45.0, 2.0):asc"], "showRankingScoreDetails": true}),
        json!({"q": "chair", "sort": ["_geoPoint(50.5, 10.2):desc"], "showRankingScoreDetails": true}),
        json!({"q": "", "filter": "_geoRadius(45.0, 2.0, 200000)", "showRankingScoreDetails": true}),
        json!({"q": "watch", "distinct": "brand", "showRankingScoreDetails": true}),
        json!({"q": "", "distinct": "category", "showRankingScoreDetails": true, "limit": 10}),
        json!({"q": "red", "facets": ["category", "brand", "rating"], "showRankingScoreDetails": true}),
        json!({"q": "", "facets": ["*"], "limit": 0}),
        json!({"q": "speaker", "facets": ["price", "year"], "showRankingScoreDetails": true}),
        json!({"q": "camera", "offset": 5, "limit": 7, "showRankingScoreDetails": true}),
        json!({"q": "", "offset": 990, "limit": 20, "sort": ["popularity:desc"], "showRankingScoreDetails": true}),
        json!({"q": "", "offset": 995, "limit": 10, "showRankingScoreDetails": true}),
        json!({"q": "", "offset": 1200, "limit": 10, "showRankingScoreDetails": true}),
        json!({"q": "jacket", "page": 2, "hitsPerPage": 5, "showRankingScoreDetails": true}),
        json!({"q": "", "page": 1, "hitsPerPage": 0}),
        json!({"q": "kettle", "hitsPerPage": 3, "showRankingScoreDetails": true}),
        json!({"q": "blender", "page": 40, "hitsPerPage": 25, "sort": ["price:asc"], "showRankingScoreDetails": true}),
        json!({"q": "green", "attributesToRetrieve": ["title", "price"], "showRankingScoreDetails": true}),
        json!({"q": "green lamp", "attributesToHighlight": ["title", "description"], "showRankingScoreDetails": true}),
        json!({"q": "durable", "attributesToCrop": ["description:4"], "cropLength": 5, "showRankingScoreDetails": true}),
        json!({"q": "wooden chair", "showMatchesPosition": true, "showRankingScoreDetails": true}),
        json!({"q": "smart watch", "showRankingScore": true, "showRankingScoreDetails": true}),
        json!({"q": "smart watch black", "matchingStrategy": "all", "showRankingScoreDetails": true}),
        json!({"q": "smart watch black", "matchingStrategy": "last", "showRankingScoreDetails": true}),
        json!({"q": "portable", "rankingScoreThreshold": 0.9, "showRankingScoreDetails": true}),
        json!({"q": "acme", "attributesToSearchOn": ["brand"], "showRankingScoreDetails": true}),
        json!({"q": "guitar", "locales": ["eng"], "showRankingScoreDetails": true}),
        json!({"q": "", "filter": "tags IN [red, blue]", "facets": ["tags"], "showRankingScoreDetails": true}),
        json!({"q": "leather", "filter": "price 10 TO 200", "sort": ["rating:desc"], "facets": ["brand"], "showRankingScoreDetails": true}),
        json!({"q": "blue", "filter": "NOT category = Home", "showRankingScoreDetails": true}),
        json!({"q": "", "filter": "year NOT EXISTS", "showRankingScoreDetails": true}),
        json!({"q": "", "sort": ["year:asc"], "limit": 30, "showRankingScoreDetails": true}),
        json!({"q": "modern", "attributesToRetrieve": ["id"], "distinct": "brand", "showRankingScoreDetails": true}),
        json!({"q": "classic", "attributesToHighlight": ["*"], "highlightPreTag": "[", "highlightPostTag": "]", "showRankingScoreDetails": true}),
        // Errors, which must be the node's own.
        json!({"q": "x", "limit": "ten"}),
        json!({"q": "x", "filter": "nope = 1"}),
        json!({"q": "x", "sort": ["description:asc"]}),
        json!({"q": "x", "facets": ["description"]}),
        json!({"unknownParameter": true}),
    ];
    // Sorted and filtered variants of many words.
    for (i, w) in [
        "shoe", "phone", "lamp", "chair", "table", "speaker", "watch", "backpack", "camera",
        "guitar", "bicycle", "kettle", "blender", "sofa", "jacket",
    ]
    .iter()
    .enumerate()
    {
        variants.push(json!({"q": w, "sort": [if i % 2 == 0 { "price:asc" } else { "year:desc" }], "showRankingScoreDetails": true}));
        variants.push(json!({"q": w, "filter": format!("rating >= {}", i % 5), "facets": ["category"], "showRankingScoreDetails": true}));
        variants.push(json!({"q": format!("{} {w}", ADJ[i % ADJ.len()]), "limit": 10 + i, "showRankingScoreDetails": true}));
        variants.push(json!({"q": &w[..2], "showRankingScoreDetails": true}));
    }
    for v in variants {
        out.push(search("products", v));
    }
    // The people index (real Meilisearch test documents).
    for q in [
        "lucas",
        "hess",
        "green",
        "male",
        "blue eyes",
        "lorem ipsum",
        "Blairstown",
        "1",
        "",
        "adeline flynn",
    ] {
        out.push(search(
            "people",
            json!({"q": q, "showRankingScoreDetails": true, "facets": ["color", "gender"]}),
        ));
    }
    // GET search.
    for q in [
        "q=red&limit=5&showRankingScoreDetails=true",
        "q=phone&sort=price:asc&showRankingScoreDetails=true&attributesToRetrieve=title,price",
        "q=&facets=category,brand&limit=3&showRankingScoreDetails=true",
        "q=x&limit=abc",
    ] {
        out.push(Probe {
            method: "GET",
            path: format!("/indexes/products/search?{q}"),
            body: None,
        });
    }
    // Multi-search, plain and federated.
    out.push(Probe { method: "POST", path: "/multi-search".into(), body: Some(json!({"queries": [
        {"indexUid": "products", "q": "red", "showRankingScoreDetails": true},
        {"indexUid": "people", "q": "lucas", "showRankingScoreDetails": true},
        {"indexUid": "products", "q": "", "facets": ["category"], "limit": 3, "showRankingScoreDetails": true}
    ]}))});
    out.push(Probe {
        method: "POST",
        path: "/multi-search".into(),
        body: Some(json!({"queries": [
            {"indexUid": "products", "q": "x"}, {"indexUid": "missing", "q": "x"}
        ]})),
    });
    out.push(Probe {
        method: "POST",
        path: "/multi-search".into(),
        body: Some(json!({"federation": {"limit": 10}, "queries": [
            {"indexUid": "products", "q": "red shoe"},
            {"indexUid": "people", "q": "green", "federationOptions": {"weight": 0.9}}
        ]})),
    });
    out.push(Probe { method: "POST", path: "/multi-search".into(), body: Some(json!({"federation": {"offset": 3, "limit": 5, "facetsByIndex": {"products": ["category"], "people": ["gender"]}}, "queries": [
        {"indexUid": "products", "q": "lamp"},
        {"indexUid": "people", "q": "male", "federationOptions": {"weight": 1.2}}
    ]}))});
    // Durations differ; their presence and steps are compared.
    out.push(search(
        "products",
        json!({"q": "red", "showPerformanceDetails": true}),
    ));
    out.push(Probe { method: "POST", path: "/multi-search".into(), body: Some(json!({"queries": [
        {"indexUid": "products", "q": "red", "showPerformanceDetails": true}, {"indexUid": "people", "q": "lucas"}
    ]}))});
    out.push(Probe {
        method: "POST",
        path: "/multi-search".into(),
        body: Some(
            json!({"federation": {"limit": 5, "showPerformanceDetails": true}, "queries": [
                {"indexUid": "products", "q": "red"}, {"indexUid": "people", "q": "lucas"}
            ]}),
        ),
    });
    out.push(Probe { method: "POST", path: "/multi-search".into(), body: Some(json!({"federation": {"page": 2, "hitsPerPage": 4}, "queries": [
        {"indexUid": "products", "q": "guitar"}, {"indexUid": "products", "q": "camera", "federationOptions": {"weight": 2.0}}
    ]}))});
    out.push(Probe {
        method: "POST",
        path: "/multi-search".into(),
        body: Some(json!({"federation": {}, "queries": [
            {"indexUid": "products", "q": "x", "limit": 5}
        ]})),
    });
    for body in [
        json!({"federation": {}, "queries": [
            {"indexUid": "products", "q": "blue"}, {"indexUid": "people", "q": "blue"}]}),
        json!({"federation": {"limit": 15}, "queries": [
            {"indexUid": "products", "q": "lamp", "sort": ["price:asc"]},
            {"indexUid": "people", "q": "anna", "federationOptions": {"weight": 3.0}}]}),
        json!({"federation": {"limit": 8, "mergeFacets": {}, "facetsByIndex": {"products": ["category"], "people": ["gender"]}}, "queries": [
            {"indexUid": "products", "q": "red"}, {"indexUid": "people", "q": "red"}]}),
        json!({"federation": {"hitsPerPage": 6}, "queries": [
            {"indexUid": "products", "q": "wooden chair", "filter": "price > 100"},
            {"indexUid": "people", "q": "smith", "federationOptions": {"weight": 0.5}}]}),
        json!({"federation": {"offset": 10, "limit": 10}, "queries": [
            {"indexUid": "products", "q": "", "filter": "category = Sports"},
            {"indexUid": "people", "q": ""}]}),
        json!({"federation": {"limit": 12}, "queries": [
            {"indexUid": "products", "q": "shoe", "showRankingScore": true},
            {"indexUid": "people", "q": "john", "federationOptions": {"weight": 1.5}}]}),
        // Several queries on one index: a document they find counts once (hits, totals, facets).
        json!({"federation": {"limit": 50}, "queries": [
            {"indexUid": "products", "q": "red"}, {"indexUid": "products", "q": "red lamp"}]}),
        json!({"federation": {"limit": 10, "facetsByIndex": {"products": ["category", "brand"]}}, "queries": [
            {"indexUid": "products", "q": "wooden"}, {"indexUid": "products", "q": "wooden chair", "federationOptions": {"weight": 2.0}}]}),
        json!({"federation": {"hitsPerPage": 5, "page": 3}, "queries": [
            {"indexUid": "products", "q": "blue"}, {"indexUid": "products", "q": "blue shoe"}, {"indexUid": "people", "q": "blue"}]}),
        json!({"federation": {"limit": 5, "mergeFacets": {}, "facetsByIndex": {"products": ["category"], "people": ["gender"]}}, "queries": [
            {"indexUid": "products", "q": "lamp"}, {"indexUid": "products", "q": "red lamp"}, {"indexUid": "people", "q": "a"}]}),
    ] {
        out.push(Probe {
            method: "POST",
            path: "/multi-search".into(),
            body: Some(body),
        });
    }
    // Facet search.
    for body in [
        json!({"facetName": "brand", "facetQuery": "a"}),
        json!({"facetName": "category", "facetQuery": ""}),
        json!({"facetName": "category", "q": "red"}),
        json!({"facetName": "tags", "facetQuery": "bl", "filter": "price < 500"}),
        json!({"facetName": "description", "facetQuery": "x"}),
    ] {
        out.push(Probe {
            method: "POST",
            path: "/indexes/products/facet-search".into(),
            body: Some(body),
        });
    }
    // The shard tag does not exist for a client: every use of it as an attribute answers
    // what a node answers for an attribute that is not filterable / sortable.
    let tag = "_miroir_shard";
    for (path, body) in [
        (
            "/indexes/products/search",
            json!({"filter": format!("{tag} EXISTS")}),
        ),
        (
            "/indexes/products/search",
            json!({"filter": ["price < 50", [format!("{tag} = '!!!!'"), "year > 1990"]]}),
        ),
        (
            "/indexes/products/search",
            json!({"q": "red", "sort": [format!("{tag}:asc")]}),
        ),
        (
            "/indexes/products/search",
            json!({"facets": [tag, "category"]}),
        ),
        (
            "/indexes/products/search",
            json!({"q": "lamp", "distinct": tag}),
        ),
        ("/indexes/products/search", json!({"q": tag})),
        (
            "/indexes/products/search",
            json!({"filter": format!("title = {tag}")}),
        ),
        ("/indexes/products/facet-search", json!({"facetName": tag})),
        (
            "/indexes/products/facet-search",
            json!({"facetName": "category", "filter": format!("{tag} EXISTS")}),
        ),
        (
            "/indexes/products/documents/fetch",
            json!({"filter": format!("NOT {tag} IS NULL")}),
        ),
        (
            "/indexes/products/documents/fetch",
            json!({"sort": [format!("{tag}:desc")]}),
        ),
        (
            "/multi-search",
            json!({"queries": [{"indexUid": "products", "q": "x"}, {"indexUid": "people", "filter": format!("{tag} EXISTS")}]}),
        ),
        (
            "/multi-search",
            json!({"federation": {}, "queries": [{"indexUid": "products", "q": "x"}, {"indexUid": "people", "sort": [format!("{tag}:asc")]}]}),
        ),
        (
            "/multi-search",
            json!({"federation": {"facetsByIndex": {"products": [tag]}}, "queries": [{"indexUid": "products", "q": "x"}]}),
        ),
    ] {
        out.push(Probe {
            method: "POST",
            path: path.into(),
            body: Some(body),
        });
    }
    // Values a node refuses, and page 0.
    for body in [
        json!({"q": "red", "limit": null}),
        json!({"q": "red", "limit": "5"}),
        json!({"q": "red", "offset": null}),
        json!({"q": "red", "showRankingScore": null}),
        json!({"q": "red", "showRankingScore": "yes"}),
        json!({"q": "red", "showRankingScoreDetails": 1}),
        json!({"q": "red", "page": 0}),
        json!({"q": "red", "page": 0, "hitsPerPage": 7}),
        json!({"q": "red", "page": null, "hitsPerPage": 3}),
    ] {
        out.push(Probe {
            method: "POST",
            path: "/indexes/products/search".into(),
            body: Some(body),
        });
    }
    // Document reads with sort (without sort, a node's order is its internal ids).
    for body in [
        json!({"filter": "price < 20", "sort": ["price:asc"], "limit": 15}),
        json!({"filter": "category = Music", "sort": ["year:desc", "price:asc"], "offset": 10, "limit": 10, "fields": ["title", "year"]}),
        json!({"sort": ["title:asc"], "limit": 5, "fields": ["title"]}),
        json!({"filter": "nope = 1"}),
    ] {
        out.push(Probe {
            method: "POST",
            path: "/indexes/products/documents/fetch".into(),
            body: Some(body),
        });
    }
    out.push(Probe {
        method: "GET",
        path: "/indexes/products/documents?sort=price:desc&limit=7&fields=title,price".into(),
        body: None,
    });
    out.push(Probe {
        method: "GET",
        path: "/indexes/products/documents/42".into(),
        body: None,
    });
    out.push(Probe {
        method: "GET",
        path: "/indexes/products/stats".into(),
        body: None,
    });
    out.push(search("missing", json!({"q": "x"})));
    out
}

const ADJ: &[&str] = &["red", "vintage", "wireless", "smart", "leather"];

async fn load(api: &mut Api) {
    let products = Value::from(support::corpus::products(10_000));
    let people = support::data::people();
    let steps: Vec<(&str, String, Value)> = vec![
        (
            "PATCH",
            "/indexes/products/settings".into(),
            json!({
                "searchableAttributes": ["title", "brand", "description", "tags", "category"],
                "filterableAttributes": ["brand", "category", "price", "year", "rating", "tags", "_geo"],
                "sortableAttributes": ["price", "year", "rating", "title", "popularity", "_geo"],
                "rankingRules": ["words", "typo", "proximity", "attribute", "sort", "exactness", "popularity:desc"],
                "synonyms": {"phone": ["smartphone"], "smartphone": ["phone"], "sofa": ["couch"]},
                "faceting": {"sortFacetValuesBy": {"brand": "count", "*": "alpha"}},
                "typoTolerance": {"minWordSizeForTypos": {"oneTypo": 4, "twoTypos": 8}}
            }),
        ),
        (
            "PATCH",
            "/indexes/people/settings".into(),
            json!({"filterableAttributes": ["color", "gender", "age"], "sortableAttributes": ["age"]}),
        ),
    ];
    for (method, path, body) in steps {
        let t = api
            .write(
                method,
                &path,
                Some("application/json"),
                body.to_string().as_bytes(),
            )
            .await;
        assert_eq!(t["status"], "succeeded", "{path}: {t}");
    }
    let t = api
        .write(
            "POST",
            "/indexes/products/documents?primaryKey=id",
            Some("application/json"),
            products.to_string().as_bytes(),
        )
        .await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let t = api
        .write(
            "POST",
            "/indexes/people/documents",
            Some("application/json"),
            &people,
        )
        .await;
    assert_eq!(t["status"], "succeeded", "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_through_miroir_match_a_single_node() {
    let Some(bin) = meili::binary() else {
        meili::skip_notice("reads_through_miroir_match_a_single_node");
        return;
    };
    let started = Instant::now();
    let ReferenceAndFleet {
        single,
        nodes,
        gateway: gw,
    } = ReferenceAndFleet::start(&bin, KEY).await;
    let mut a = Api::new(single.addr, Some(KEY));
    let mut b = Api::new(gw.addr, Some(KEY));
    let (_, _) = tokio::join!(load(&mut a), load(&mut b));
    eprintln!("loaded in {:?}", started.elapsed());

    if let Ok(dir) = std::env::var("MIROIR_RECORD_FIXTURES") {
        record_fixtures(&mut a, &nodes, std::path::Path::new(&dir)).await;
    }
    let probes = queries();
    assert!(probes.len() >= 150, "only {} queries", probes.len());
    let mut failures = same_index_federated(&mut a, &mut b).await;
    failures.extend(fetch_by_ids(&mut a, &mut b).await);
    let mut reordered = 0;
    let mut tied_queries = 0;
    for p in &probes {
        let body = p
            .body
            .as_ref()
            .map(|b| b.to_string().into_bytes())
            .unwrap_or_default();
        let ct = p.body.as_ref().map(|_| "application/json");
        let ra = a.call(p.method, &p.path, ct, &body).await;
        let rb = b.call(p.method, &p.path, ct, &body).await;
        let what = format!(
            "{} {} {}",
            p.method,
            p.path,
            p.body.as_ref().map(Value::to_string).unwrap_or_default()
        );
        if ra.status != rb.status {
            failures.push(format!(
                "{what}: status {} vs {}: {} / {}",
                ra.status,
                rb.status,
                ra.text(),
                rb.text()
            ));
            continue;
        }
        let (ja, jb) = (ra.json(), rb.json());
        // The window the answer covers, to tell which tie groups it may cut.
        let params: Value = match &p.body {
            Some(b) if b.get("federation").is_some() => b["federation"].clone(),
            Some(b) => b.clone(),
            None => {
                let query = p.path.split_once('?').map_or("", |(_, q)| q);
                let mut o = serde_json::Map::new();
                for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
                    if let Ok(n) = v.parse::<u64>() {
                        o.insert(k.to_string(), Value::from(n));
                    }
                }
                Value::Object(o)
            }
        };
        let offset = params["offset"].as_u64().unwrap_or(0) as usize;
        let limit = params["limit"]
            .as_u64()
            .or(params["hitsPerPage"].as_u64())
            .unwrap_or(20) as usize;
        let page = params["page"].as_u64().unwrap_or(1).max(1) as usize;
        let window = if params.get("page").is_some() || params.get("hitsPerPage").is_some() {
            ((page - 1) * limit, limit)
        } else {
            (offset, limit)
        };
        let distinct = p
            .body
            .as_ref()
            .is_some_and(|b| b.to_string().contains("\"distinct\""));
        match compare(&ja, &jb, Some(window), distinct, &what) {
            Ok(0) => {}
            Ok(n) => {
                reordered += n;
                tied_queries += 1;
            }
            Err(e) => failures.push(e),
        }
    }
    eprintln!(
        "differential: {} queries, {} failed, {} answers differed only in the order of {} tied hits ({:?} in all)",
        probes.len(),
        failures.len(),
        tied_queries,
        reordered,
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {} queries differ:\n{}",
        failures.len(),
        probes.len(),
        failures.join("\n\n")
    );
}

/// Federated queries of one index: a document found by several is kept once, and counted
/// once (each node answers a federated request for its shards' totals and facets).
const SAME_INDEX_FEDERATED: &[(&str, &str)] = &[
    ("red", "red lamp"),
    ("wooden", "wooden chair"),
    ("blue", "blue shoe"),
];

async fn same_index_federated(a: &mut Api, b: &mut Api) -> Vec<String> {
    let mut failures = Vec::new();
    for (q1, q2) in SAME_INDEX_FEDERATED {
        let body = json!({"federation": {"limit": 50}, "queries": [
            {"indexUid": "products", "q": q1}, {"indexUid": "products", "q": q2}]});
        let ja = a.json("POST", "/multi-search", &body).await.json();
        let jb = b.json("POST", "/multi-search", &body).await.json();
        let ids = |j: &Value| -> Vec<Value> {
            j["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["id"].clone())
                .collect()
        };
        let (ia, ib) = (ids(&ja), ids(&jb));
        let distinct: std::collections::BTreeSet<String> =
            ib.iter().map(Value::to_string).collect();
        if distinct.len() != ib.len() {
            failures.push(format!("{q1}/{q2}: a document appears twice: {ib:?}"));
        }
        let sa: std::collections::BTreeSet<String> = ia.iter().map(Value::to_string).collect();
        if sa != distinct {
            failures.push(format!("{q1}/{q2}: other documents: {ia:?} vs {ib:?}"));
        }
        if ja["estimatedTotalHits"] != jb["estimatedTotalHits"] {
            failures.push(format!(
                "{q1}/{q2}: estimatedTotalHits {} vs {}",
                ja["estimatedTotalHits"], jb["estimatedTotalHits"]
            ));
        }
    }
    failures
}

/// Documents fetched by `ids`: the same documents and total as one node; their order is a
/// node's internal id order, which the gateway cannot know (a known difference, README).
async fn fetch_by_ids(a: &mut Api, b: &mut Api) -> Vec<String> {
    let body = json!({"ids": [1, 2, 3, 500, 9999, "7", 42], "fields": ["id", "title"]});
    let path = "/indexes/products/documents/fetch";
    let (ja, jb) = (
        a.json("POST", path, &body).await.json(),
        b.json("POST", path, &body).await.json(),
    );
    let set = |j: &Value| -> std::collections::BTreeSet<String> {
        j["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(Value::to_string)
            .collect()
    };
    let mut failures = Vec::new();
    if set(&ja) != set(&jb) || ja["total"] != jb["total"] {
        failures.push(format!("fetch by ids: {ja} vs {jb}"));
    }
    failures
}

/// Records, for CI, what real nodes answer to the shard requests of a set of searches and
/// what one node answers to the searches themselves (`tests/recorded_merges.rs` replays them
/// through the merge). Run with `MIROIR_RECORD_FIXTURES=tests/fixtures/merge`.
async fn record_fixtures(single: &mut Api, nodes: &[MeiliNode], dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    let fields =
        json!(["id", "title", "brand", "price", "year", "name", "color", "gender", "category"]);
    let mut n = 0;
    for p in queries() {
        let (Some(body), true) = (&p.body, p.path.ends_with("/search")) else {
            continue;
        };
        let mut body = body.clone();
        if body.get("attributesToRetrieve").is_none() {
            body["attributesToRetrieve"] = fields.clone();
        }
        let index = p.path.split('/').nth(2).unwrap().to_string();
        let expected = single.json("POST", &p.path, &body).await;
        if expected.status != 200 || n >= 60 {
            continue;
        }
        let settings = single
            .get(&format!("/indexes/{index}/settings"))
            .await
            .json();
        let merge_settings = miroir::merge::MergeSettings::from_settings(&settings);
        let Some(prepared) = miroir::merge::prepare(body.as_object().unwrap(), &merge_settings)
        else {
            continue;
        };
        let mut shards = Vec::new();
        for node in nodes {
            let mut api = Api::new(node.addr, Some(KEY));
            shards.push(
                api.json("POST", &p.path, &Value::Object(prepared.shard_body.clone()))
                    .await
                    .json(),
            );
        }
        let fixture = json!({
            "index": index,
            "settings": {"pagination": settings["pagination"], "faceting": settings["faceting"], "distinctAttribute": settings["distinctAttribute"]},
            "request": body,
            "shards": shards,
            "expected": expected.json(),
        });
        let bytes = serde_json::to_vec(&fixture).unwrap();
        // Keep the fixtures small enough to live in the repository.
        if bytes.len() > 60_000 {
            continue;
        }
        std::fs::write(dir.join(format!("{n:03}.json")), bytes).unwrap();
        n += 1;
    }
    eprintln!("recorded {n} merge fixtures in {}", dir.display());
    record_federated_fixtures(single, nodes, &dir.join("../federated"), &fields).await;
}

/// The same for federated multi-searches (`tests/fixtures/federated`).
async fn record_federated_fixtures(
    single: &mut Api,
    nodes: &[MeiliNode],
    dir: &std::path::Path,
    fields: &Value,
) {
    std::fs::create_dir_all(dir).unwrap();
    let mut n = 0;
    for p in queries() {
        let Some(body) = p.body.as_ref().filter(|b| b.get("federation").is_some()) else {
            continue;
        };
        let mut body = body.clone();
        for q in body["queries"].as_array_mut().into_iter().flatten() {
            if q.get("attributesToRetrieve").is_none() {
                q["attributesToRetrieve"] = fields.clone();
            }
        }
        let expected = single.json("POST", "/multi-search", &body).await;
        if expected.status != 200 {
            continue;
        }
        let indexes = miroir::merge::federated_indexes(body.as_object().unwrap()).unwrap();
        let mut raw = serde_json::Map::new();
        let mut settings = std::collections::BTreeMap::new();
        for index in indexes {
            let s = single
                .get(&format!("/indexes/{index}/settings"))
                .await
                .json();
            let kept = json!({"pagination": s["pagination"], "faceting": s["faceting"], "distinctAttribute": s["distinctAttribute"]});
            settings.insert(
                index.clone(),
                miroir::merge::MergeSettings::from_settings(&kept),
            );
            raw.insert(index, kept);
        }
        let prepared =
            miroir::merge::prepare_federated(body.as_object().unwrap(), &settings).unwrap();
        let shard_body = json!({"queries": prepared
            .queries
            .iter()
            .map(|q| Value::Object(q.shard_body.clone()))
            .collect::<Vec<_>>()});
        let mut shards = Vec::new();
        for node in nodes {
            let mut api = Api::new(node.addr, Some(KEY));
            shards.push(api.json("POST", "/multi-search", &shard_body).await.json());
        }
        let fixture = json!({
            "settings": raw,
            "request": body,
            "shards": shards,
            "expected": expected.json(),
        });
        let bytes = serde_json::to_vec(&fixture).unwrap();
        std::fs::write(dir.join(format!("{n:03}.json")), bytes).unwrap();
        n += 1;
    }
    eprintln!("recorded {n} federated fixtures in {}", dir.display());
}
