use proptest::prelude::*;
use serde_json::{json, Value};

use super::model::{apply, AliasSpec, AliasTable};
use super::resolve::{echo_aliases, federated_body, resolve, with_index, Resolution, Rewrite};
use crate::routes::{classify, Endpoint};

fn spec(targets: &[&str], write: Option<&str>) -> AliasSpec {
    AliasSpec {
        targets: targets.iter().map(|t| t.to_string()).collect(),
        write_index: write.map(str::to_string),
    }
}

fn table(aliases: &[(&str, &[&str], Option<&str>)]) -> AliasTable {
    let mut t = AliasTable::default();
    for (name, targets, write) in aliases {
        apply(&mut t, name, spec(targets, *write), true, 10, "t0").unwrap();
    }
    t
}

fn resolve_req(t: &AliasTable, method: &str, path: &str, body: &str) -> Resolution {
    let route = classify(&method.parse().unwrap(), path).unwrap();
    resolve(
        t,
        route.endpoint,
        route.index.as_deref(),
        path,
        body.as_bytes(),
    )
}

fn rewritten_path(r: Resolution) -> String {
    match r {
        Resolution::Rewritten(Rewrite { path: Some(p), .. }) => p,
        other => panic!("not rewritten: {other:?}"),
    }
}

fn refused_code(r: Resolution) -> (u16, &'static str) {
    match r {
        Resolution::Refused(e) => (e.status, e.code),
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn every_index_route_resolves_a_one_target_alias() {
    let t = table(&[("products", &["products_v1"], None)]);
    for (method, path) in [
        ("POST", "/indexes/products/search"),
        ("GET", "/indexes/products/search"),
        ("POST", "/indexes/products/facet-search"),
        ("GET", "/indexes/products/documents"),
        ("POST", "/indexes/products/documents/fetch"),
        ("GET", "/indexes/products/documents/42"),
        ("POST", "/indexes/products/documents"),
        ("PUT", "/indexes/products/documents"),
        ("DELETE", "/indexes/products/documents/42"),
        ("POST", "/indexes/products/documents/delete-batch"),
        ("POST", "/indexes/products/documents/delete"),
        ("GET", "/indexes/products/settings"),
        ("PATCH", "/indexes/products/settings"),
        ("PUT", "/indexes/products/settings/ranking-rules"),
        ("GET", "/indexes/products/stats"),
        ("GET", "/indexes/products"),
    ] {
        let want = path.replacen("/products", "/products_v1", 1);
        assert_eq!(
            rewritten_path(resolve_req(&t, method, path, "")),
            want,
            "{method} {path}"
        );
    }
    // Doubled and trailing slashes are a node's same route.
    assert_eq!(
        rewritten_path(resolve_req(&t, "GET", "//indexes/products/search/", "")),
        "/indexes/products_v1/search"
    );
    // An index that is not an alias is left alone.
    assert_eq!(
        resolve_req(&t, "POST", "/indexes/other/search", "{}"),
        Resolution::Direct
    );
}

#[test]
fn an_alias_is_not_an_index() {
    let t = table(&[("products", &["products_v1"], None)]);
    for (method, path) in [
        ("DELETE", "/indexes/products"),
        ("PATCH", "/indexes/products"),
    ] {
        assert_eq!(
            refused_code(resolve_req(&t, method, path, "{}")),
            (409, "miroir_index_is_alias")
        );
    }
    // Nor can an index take an alias's name: created, renamed or swapped.
    let refusals = [
        ("POST", "/indexes", r#"{"uid":"products"}"#),
        ("PATCH", "/indexes/old", r#"{"uid":"products"}"#),
        ("POST", "/swap-indexes", r#"[{"indexes":["products","x"]}]"#),
    ];
    for (method, path, body) in refusals {
        assert_eq!(
            refused_code(resolve_req(&t, method, path, body)).0,
            409,
            "{method} {path} {body}"
        );
    }
    assert_eq!(
        resolve_req(&t, "POST", "/indexes", r#"{"uid":"p2"}"#),
        Resolution::Direct
    );
}

#[test]
fn several_targets_search_together_and_write_only_with_a_write_index() {
    let t = table(&[
        ("all", &["a", "b"], None),
        ("logs", &["l1", "l2"], Some("l2")),
    ]);
    assert_eq!(
        resolve_req(&t, "POST", "/indexes/all/search", "{}"),
        Resolution::Federated {
            alias: "all".into(),
            targets: vec!["a".into(), "b".into()]
        }
    );
    assert_eq!(
        refused_code(resolve_req(&t, "POST", "/indexes/all/documents", "[]")),
        (409, "miroir_alias_ambiguous")
    );
    assert_eq!(
        rewritten_path(resolve_req(&t, "POST", "/indexes/logs/documents", "[]")),
        "/indexes/l2/documents"
    );
    // A read that is not a search goes to the write index.
    assert_eq!(
        rewritten_path(resolve_req(&t, "GET", "/indexes/logs/settings", "")),
        "/indexes/l2/settings"
    );
}

#[test]
fn multi_search_resolves_each_query_and_echoes_the_alias() {
    let t = table(&[("products", &["p1"], None), ("all", &["a", "b"], None)]);
    let body = r#"{"queries":[{"indexUid":"x","q":"1"},{"indexUid":"products","q":"2"}]}"#;
    let Resolution::Rewritten(rw) = resolve_req(&t, "POST", "/multi-search", body) else {
        panic!("not rewritten");
    };
    let sent: Value = serde_json::from_slice(rw.body.as_ref().unwrap()).unwrap();
    assert_eq!(sent["queries"][0]["indexUid"], "x");
    assert_eq!(sent["queries"][1]["indexUid"], "p1");
    assert_eq!(sent["queries"][1]["q"], "2");
    assert_eq!(rw.echo, vec![(1, "products".to_string())]);
    let answer =
        json!({"results": [{"indexUid": "x", "hits": []}, {"indexUid": "p1", "hits": []}]});
    let named: Value =
        serde_json::from_slice(&echo_aliases(answer.to_string().as_bytes(), &rw.echo).unwrap())
            .unwrap();
    assert_eq!(named["results"][0]["indexUid"], "x");
    assert_eq!(named["results"][1]["indexUid"], "products");

    // Several targets: one query each in a federated search, refused in a plain one.
    let fed =
        r#"{"federation":{"facetsByIndex":{"all":["c"]}},"queries":[{"indexUid":"all","q":"z"}]}"#;
    let Resolution::Rewritten(rw) = resolve_req(&t, "POST", "/multi-search", fed) else {
        panic!("not rewritten");
    };
    let sent: Value = serde_json::from_slice(rw.body.as_ref().unwrap()).unwrap();
    let uids: Vec<&str> = sent["queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["indexUid"].as_str().unwrap())
        .collect();
    assert_eq!(uids, ["a", "b"]);
    assert_eq!(
        sent["federation"]["facetsByIndex"],
        json!({"a": ["c"], "b": ["c"]})
    );
    let plain = r#"{"queries":[{"indexUid":"all"}]}"#;
    assert_eq!(
        refused_code(resolve_req(&t, "POST", "/multi-search", plain)),
        (400, "miroir_alias_ambiguous")
    );
}

#[test]
fn a_search_of_several_targets_is_their_federated_search() {
    let query =
        json!({"q": "shoe", "limit": 5, "offset": 2, "facets": ["brand"], "filter": "x = 1"});
    let body = federated_body(query.as_object().unwrap(), &["a".into(), "b".into()]);
    assert_eq!(
        Value::Object(body),
        json!({
            "federation": {"limit": 5, "offset": 2, "facetsByIndex": {"a": ["brand"], "b": ["brand"]}, "mergeFacets": {}},
            "queries": [
                {"indexUid": "a", "q": "shoe", "filter": "x = 1"},
                {"indexUid": "b", "q": "shoe", "filter": "x = 1"}
            ]
        })
    );
}

#[test]
fn flips_keep_a_bounded_history_newest_first() {
    let mut t = table(&[("products", &["v1"], None)]);
    for (i, target) in ["v2", "v3", "v1"].iter().enumerate() {
        apply(
            &mut t,
            "products",
            spec(&[target], None),
            false,
            2,
            &format!("t{}", i + 1),
        )
        .unwrap();
    }
    let a = t.get("products").unwrap();
    assert_eq!(a.targets, ["v1"]);
    assert_eq!(a.history.len(), 2);
    assert_eq!(
        (a.history[0].from.clone(), a.history[0].to.clone()),
        (vec!["v3".to_string()], vec!["v1".to_string()])
    );
    assert_eq!(a.history[0].at, "t3");
    assert_eq!(a.history[1].to, ["v3"]);
    // A table survives its encoding.
    assert_eq!(AliasTable::decode(t.version, &t.encode()), t);
    // Aliases of aliases, duplicates and unknown names are refused.
    assert!(apply(&mut t, "x", spec(&["products"], None), true, 2, "t").is_err());
    assert!(apply(&mut t, "products", spec(&["a"], None), true, 2, "t").is_err());
    assert!(apply(&mut t, "nope", spec(&["a"], None), false, 2, "t").is_err());
    assert!(AliasSpec::parse(&json!({"targets": ["a", "a"]})).is_err());
    assert!(AliasSpec::parse(&json!({"targets": ["a"], "writeIndex": "b"})).is_err());
    assert!(AliasSpec::parse(&json!({"targets": ["bad name"]})).is_err());
    assert_eq!(
        AliasSpec::parse(&json!({"target": "a"})).unwrap(),
        spec(&["a"], None)
    );
}

fn uid() -> impl Strategy<Value = String> {
    "[a-z0-9_-]{1,12}"
}

proptest! {
    /// Only the index segment changes, whatever the route around it.
    #[test]
    fn with_index_replaces_the_index_segment_only(
        index in uid(), target in uid(), rest in proptest::collection::vec(uid(), 0..4)
    ) {
        let mut path = format!("/indexes/{index}");
        for r in &rest {
            path.push('/');
            path.push_str(r);
        }
        let out = with_index(&path, &target);
        let segs: Vec<&str> = out.split('/').skip(1).collect();
        prop_assert_eq!(segs[0], "indexes");
        prop_assert_eq!(segs[1], target.as_str());
        let want: Vec<&str> = rest.iter().map(String::as_str).collect();
        prop_assert_eq!(&segs[2..], want.as_slice());
    }

    /// A request resolved from a table never names an alias any more, and names one of the
    /// alias's targets.
    #[test]
    fn resolution_lands_on_a_target(
        names in proptest::collection::btree_set(uid(), 1..4),
        pick in 0usize..4,
        endpoint_pick in 0usize..4,
    ) {
        let names: Vec<String> = names.into_iter().collect();
        let mut t = AliasTable::default();
        for n in &names {
            let target = format!("{n}_idx");
            apply(&mut t, n, AliasSpec { targets: vec![target], write_index: None }, true, 10, "t").unwrap();
        }
        let name = &names[pick % names.len()];
        let (method, suffix) = [("POST", "search"), ("GET", "documents"), ("POST", "documents"), ("GET", "settings")][endpoint_pick];
        let path = format!("/indexes/{name}/{suffix}");
        let route = classify(&method.parse().unwrap(), &path).unwrap();
        prop_assert!(route.endpoint != Endpoint::IndexDelete);
        match resolve(&t, route.endpoint, route.index.as_deref(), &path, b"") {
            Resolution::Rewritten(rw) => {
                let want = format!("{name}_idx");
                prop_assert_eq!(rw.index.as_deref(), Some(want.as_str()));
                prop_assert!(t.get(rw.index.as_deref().unwrap()).is_none());
            }
            other => prop_assert!(false, "not rewritten: {:?}", other),
        }
    }
}

mod swaps {
    use std::sync::Arc;
    use std::time::Duration;

    use super::super::model::SwapMark;
    use super::super::{now_ms, AliasService};
    use crate::tasks::TaskService;

    fn mark(id: &str, gateway: &str, until_ms: u64) -> SwapMark {
        SwapMark {
            id: id.into(),
            gateway: gateway.into(),
            indexes: vec!["a".into()],
            until_ms,
        }
    }

    async fn set(service: &AliasService, marks: Vec<SwapMark>) {
        service
            .change(|t, _| {
                t.swaps = marks.clone();
                Ok(())
            })
            .await
            .unwrap();
        service.follow_swaps().await;
    }

    async fn a_is_held(service: &AliasService) -> bool {
        let a = ["a".to_string()];
        service
            .gate
            .read(&a, Duration::from_millis(20))
            .await
            .is_none()
    }

    #[tokio::test]
    async fn another_gateways_swap_holds_readers_until_its_mark_goes_or_expires() {
        let dir = std::env::temp_dir().join(format!("miroir-swaps-{}", uuid::Uuid::new_v4()));
        let tasks = Arc::new(TaskService::open(&dir).unwrap());
        let me = tasks.holder().to_string();
        let service = AliasService::new(tasks, 10, &crate::metrics::Metrics::new());

        set(&service, vec![mark("s1", "other", now_ms() + 60_000)]).await;
        assert!(a_is_held(&service).await);
        let b = ["b".to_string()];
        assert!(service
            .gate
            .read(&b, Duration::from_millis(20))
            .await
            .is_some());
        // The swap is done: its mark goes, the readers with it.
        set(&service, vec![]).await;
        assert!(!a_is_held(&service).await);
        // A mark past its life (its gateway stopped) holds nothing; nor does this gateway's
        // own mark (its swap holds the readers itself).
        set(&service, vec![mark("s2", "other", now_ms() - 1)]).await;
        assert!(!a_is_held(&service).await);
        set(&service, vec![mark("s3", &me, now_ms() + 60_000)]).await;
        assert!(!a_is_held(&service).await);
        let _ = std::fs::remove_dir_all(dir);
    }
}
