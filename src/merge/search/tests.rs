use serde_json::{json, Value};

use super::*;

/// Details with one scored rule, then an optional `year:asc` sort rule.
fn details(score: f64, sort: Option<i64>) -> Value {
    let mut d = json!({"proximity": {"order": 0, "score": score}});
    if let Some(v) = sort {
        d["year:asc"] = json!({"order": 1, "value": v});
    }
    d
}

/// A hit whose rule score is `score / 2`.
fn hit(id: u64, score: f64, sort: Option<i64>, genre: &str) -> Value {
    let s = score / 2.0;
    json!({"id": id, "genre": genre, "_miroir_shard": "!!!!", "_rankingScore": s, "_rankingScoreDetails": details(s, sort)})
}

fn answer(hits: Vec<Value>, total: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "hits": hits, "query": "q", "processingTimeMs": 3, "limit": 20, "offset": 0,
        "estimatedTotalHits": total, "requestUid": "0190-old"
    }))
    .unwrap()
}

fn plan() -> SearchPlan {
    SearchPlan {
        offset: 0,
        limit: 20,
        page: None,
        hits: HitPlan::default(),
        distinct: None,
        max_total_hits: 1000,
        facets: FacetSettings::default(),
    }
}

fn merged(bodies: &[Vec<u8>], plan: &SearchPlan) -> Value {
    let mut shards: Vec<ShardAnswer<'_>> = bodies
        .iter()
        .map(|b| ShardAnswer::parse(b, plan.distinct.as_deref()).unwrap())
        .collect();
    serde_json::from_slice(&merge_search(&mut shards, plan, 1).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u64> {
    v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect()
}

#[test]
fn hits_interleave_by_score_and_lose_injected_fields() {
    let a = answer(vec![hit(1, 2.0, None, "x"), hit(3, 1.0, None, "x")], 2);
    let b = answer(vec![hit(2, 2.0, None, "y"), hit(4, 0.0, None, "y")], 5);
    let out = merged(&[a, b], &plan());
    assert_eq!(ids(&out), [1, 2, 3, 4]);
    assert_eq!(out["hits"][0], json!({"id": 1, "genre": "x"}));
    assert_eq!(out["estimatedTotalHits"], 7);
    assert_eq!(out["processingTimeMs"], 4);
    assert_ne!(out["requestUid"], "0190-old");
    let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "hits",
            "query",
            "processingTimeMs",
            "limit",
            "offset",
            "estimatedTotalHits",
            "requestUid"
        ]
    );
}

#[test]
fn sort_values_decide_before_scores() {
    let a = answer(
        vec![hit(1, 2.0, Some(2000), "x"), hit(3, 2.0, Some(2010), "x")],
        2,
    );
    let b = answer(
        vec![hit(2, 2.0, Some(1990), "y"), hit(4, 2.0, Some(2005), "y")],
        2,
    );
    assert_eq!(ids(&merged(&[a, b], &plan())), [2, 1, 4, 3]);
}

#[test]
fn paging_offsets_and_the_total_cap_apply_to_the_merged_list() {
    let a = answer(
        (0..5)
            .map(|i| hit(i * 2, 2.0 - i as f64 * 0.1, None, "x"))
            .collect(),
        5,
    );
    let b = answer(
        (0..5)
            .map(|i| hit(i * 2 + 1, 1.95 - i as f64 * 0.1, None, "y"))
            .collect(),
        5,
    );
    let mut p = plan();
    p.offset = 3;
    p.limit = 4;
    assert_eq!(ids(&merged(&[a.clone(), b.clone()], &p)), [3, 4, 5, 6]);
    p.max_total_hits = 5;
    assert_eq!(ids(&merged(&[a.clone(), b.clone()], &p)), [3, 4]);
    let mut pages = plan();
    pages.page = Some((2, 3));
    let mut a2: Value = serde_json::from_slice(&a).unwrap();
    let mut b2: Value = serde_json::from_slice(&b).unwrap();
    for v in [&mut a2, &mut b2] {
        let o = v.as_object_mut().unwrap();
        o.remove("estimatedTotalHits");
        o.remove("limit");
        o.remove("offset");
        o.insert("hitsPerPage".into(), json!(6));
        o.insert("page".into(), json!(1));
        o.insert("totalPages".into(), json!(1));
        o.insert("totalHits".into(), json!(5));
    }
    let out = merged(
        &[
            serde_json::to_vec(&a2).unwrap(),
            serde_json::to_vec(&b2).unwrap(),
        ],
        &pages,
    );
    assert_eq!(ids(&out), [3, 4, 5]);
    assert_eq!(
        (
            out["totalHits"].clone(),
            out["totalPages"].clone(),
            out["page"].clone(),
            out["hitsPerPage"].clone()
        ),
        (json!(10), json!(4), json!(2), json!(3))
    );
}

#[test]
fn distinct_applies_across_shards() {
    let a = answer(vec![hit(1, 2.0, None, "x"), hit(3, 1.0, None, "z")], 2);
    let b = answer(vec![hit(2, 1.5, None, "x"), hit(4, 0.5, None, "y")], 2);
    let mut p = plan();
    p.distinct = Some("genre".into());
    let out = merged(&[a, b], &p);
    assert_eq!(ids(&out), [1, 3, 4]);
    // Every shard returned all its hits: the total is the distinct count, exactly.
    assert_eq!(out["estimatedTotalHits"], 3);
    // Partial lists: the shards' estimates are summed, as a node's estimate would be.
    let a = answer(vec![hit(1, 2.0, None, "x")], 40);
    let b = answer(vec![hit(2, 1.5, None, "x")], 2);
    assert_eq!(merged(&[a, b], &p)["estimatedTotalHits"], 42);
    p.hits.strip = vec!["genre".into()];
    let a = answer(vec![hit(1, 2.0, None, "x")], 1);
    assert_eq!(merged(&[a], &p)["hits"][0], json!({"id": 1}));
}

#[test]
fn scores_stay_when_asked_and_formatted_loses_the_tag() {
    let mut h = hit(1, 2.0, None, "x");
    h["_formatted"] = json!({"id": "1", "genre": "x", "_miroir_shard": "!!!!"});
    let mut p = plan();
    p.hits.show_ranking_score = true;
    let out = merged(&[answer(vec![h], 1)], &p);
    assert_eq!(
        out["hits"][0],
        json!({"id": 1, "genre": "x", "_rankingScore": 1.0, "_formatted": {"id": "1", "genre": "x"}})
    );
}

#[test]
fn facets_merge() {
    let mut a: Value = serde_json::from_slice(&answer(vec![], 0)).unwrap();
    a["facetDistribution"] = json!({"genre": {"x": 2, "y": 1}, "_miroir_shard": {"!!!!": 3}});
    a["facetStats"] = json!({"year": {"min": 1990.0, "max": 2000.0}});
    let mut b = a.clone();
    b["facetDistribution"] = json!({"genre": {"y": 4}});
    b["facetStats"] = json!({"year": {"min": 1980.0, "max": 1995.0}});
    let out = merged(
        &[
            serde_json::to_vec(&a).unwrap(),
            serde_json::to_vec(&b).unwrap(),
        ],
        &plan(),
    );
    assert_eq!(out["facetDistribution"], json!({"genre": {"x": 2, "y": 5}}));
    assert_eq!(
        out["facetStats"],
        json!({"year": {"min": 1980.0, "max": 2000.0}})
    );
}

#[test]
fn a_lone_answer_keeps_its_facets_unless_they_must_be_cut_or_hidden() {
    let lone = |distribution: Value| {
        let mut a: Value = serde_json::from_slice(&answer(vec![], 0)).unwrap();
        a["facetDistribution"] = distribution;
        a["facetStats"] = json!({"year": {"min": 1990.0, "max": 2000}});
        serde_json::to_vec(&a).unwrap()
    };
    let written = |body: &[u8], plan: &SearchPlan| {
        let answer = ShardAnswer::parse(body, None).unwrap().alone();
        String::from_utf8(merge_search(&mut [answer], plan, 1).unwrap()).unwrap()
    };
    let mut p = plan();
    p.facets.max_values = 2;
    // Within the client's maximum, in the node's (count) order: copied as the node wrote it.
    let body = lone(json!({"genre": {"y": 5, "x": 2}, "tag": {"a": 1}}));
    let out = written(&body, &p);
    assert!(out.contains(r#""facetDistribution":{"genre":{"y":5,"x":2},"tag":{"a":1}}"#));
    assert!(out.contains(r#""facetStats":{"year":{"min":1990.0,"max":2000}}"#));
    // Deeper than the client's maximum (the nodes keep more values): cut to it.
    let body = lone(json!({"genre": {"a": 3, "b": 2, "c": 1}}));
    let out: Value = serde_json::from_str(&written(&body, &p)).unwrap();
    assert_eq!(out["facetDistribution"], json!({"genre": {"a": 3, "b": 2}}));
    // The gateway's own field is hidden.
    let body = lone(json!({"genre": {"a": 3}, "_miroir_shard": {"!!!!": 3}}));
    let out: Value = serde_json::from_str(&written(&body, &p)).unwrap();
    assert_eq!(out["facetDistribution"], json!({"genre": {"a": 3}}));
}

proptest::proptest! {
    /// Merging sorted shard lists gives the same order as sorting all hits together, and
    /// every hit appears once.
    #[test]
    fn merge_equals_a_global_sort(scores in proptest::collection::vec((0u8..3, 0u8..3, 0i64..5), 0..40), shards in 1usize..5) {
        let mut all: Vec<(u64, f64, i64, usize)> = scores.iter().enumerate().map(|(i, (w, _, y))| (i as u64, *w as f64, *y, i % shards)).collect();
        let key = |h: &(u64, f64, i64, usize)| (-(h.1 as i64), h.2);
        let mut bodies = Vec::new();
        for s in 0..shards {
            let mut mine: Vec<_> = all.iter().filter(|h| h.3 == s).cloned().collect();
            mine.sort_by_key(|h| (key(h), h.0));
            bodies.push(answer(mine.iter().map(|h| hit(h.0, h.1.min(2.0), Some(h.2), "g")).collect(), mine.len() as u64));
        }
        let out = merged(&bodies, &SearchPlan { limit: 1000, ..plan() });
        let got = ids(&out);
        all.sort_by_key(|h| key(h));
        proptest::prop_assert_eq!(got.len(), all.len());
        let got_keys: Vec<_> = got.iter().map(|id| key(all.iter().find(|h| h.0 == *id).unwrap())).collect();
        let want_keys: Vec<_> = all.iter().map(key).collect();
        proptest::prop_assert_eq!(got_keys, want_keys);
    }
}

#[test]
fn page_zero_has_no_hits_but_counts_them() {
    let a = answer(vec![hit(1, 2.0, None, "x")], 1);
    let b = answer(vec![hit(2, 1.0, None, "y")], 1);
    let mut a = a;
    let mut b = b;
    // Page mode answers: `hitsPerPage`, `page`, `totalPages`, `totalHits`.
    for body in [&mut a, &mut b] {
        let mut v: Value = serde_json::from_slice(body).unwrap();
        let o = v.as_object_mut().unwrap();
        for k in ["limit", "offset", "estimatedTotalHits", "requestUid"] {
            o.remove(k);
        }
        for (k, n) in [
            ("hitsPerPage", 5),
            ("page", 1),
            ("totalPages", 1),
            ("totalHits", 1),
        ] {
            o.insert(k.into(), json!(n));
        }
        *body = serde_json::to_vec(&v).unwrap();
    }
    let p = SearchPlan {
        page: Some((0, 5)),
        ..plan()
    };
    let out = merged(&[a, b], &p);
    assert_eq!(ids(&out), Vec::<u64>::new());
    assert_eq!(out["page"], 0);
    assert_eq!(out["totalHits"], 2);
    assert_eq!(out["totalPages"], 1);
}

#[test]
fn semantic_hits_are_counted_in_the_merged_window() {
    let semantic = |id: u64, s: f64| json!({"id": id, "_rankingScore": s, "_rankingScoreDetails": {"vectorSort": {"order": 0, "similarity": s, "value": [0.1]}}});
    let keyword = |id: u64, s: f64| json!({"id": id, "_rankingScore": s, "_rankingScoreDetails": details(s, None)});
    let with_count = |hits: Vec<Value>, n: u64| {
        let mut v: Value = serde_json::from_slice(&answer(hits, 10)).unwrap();
        v["semanticHitCount"] = json!(n);
        serde_json::to_vec(&v).unwrap()
    };
    let a = with_count(
        vec![semantic(1, 0.99), keyword(2, 0.5), semantic(3, 0.4)],
        2,
    );
    let b = with_count(
        vec![keyword(4, 0.98), semantic(5, 0.97), semantic(6, 0.3)],
        2,
    );
    let mut p = plan();
    p.limit = 3;
    let m = merged(&[a, b], &p);
    assert_eq!(ids(&m), [1, 4, 5]);
    // Two of the three hits shown are semantic; the nodes' own counts sum to 4.
    assert_eq!(m["semanticHitCount"], 2);
}
