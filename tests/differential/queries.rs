//! The corpus of the differential reads: searches, multi-searches, facet searches, document
//! reads and their errors, each sent to one node and to Miroir.

use serde_json::{json, Value};

/// One request of the corpus.
pub struct Probe {
    pub method: &'static str,
    pub path: String,
    pub body: Option<Value>,
}

pub fn search(index: &str, body: Value) -> Probe {
    Probe {
        method: "POST",
        path: format!("/indexes/{index}/search"),
        body: Some(body),
    }
}

pub fn queries() -> Vec<Probe> {
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
