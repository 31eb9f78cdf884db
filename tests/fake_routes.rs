//! The test node's document, settings, search and task routes, and the same requests against a
//! real Meilisearch node when a `meilisearch` binary is available: the answers must be the
//! same, but for dates, durations and request uids.

use crate::support;

use std::net::SocketAddr;

use serde_json::{json, Value};
use support::fake_node::FakeNode;
use support::meili;
use support::meili_api::Api;

const KEY: &str = "fake-routes-master-key-0123";

/// What differs from run to run, replaced by `"<set>"` (when set) at any depth.
fn normalize(mut v: Value) -> Value {
    const VARYING: [&str; 9] = [
        "enqueuedAt",
        "startedAt",
        "finishedAt",
        "duration",
        "batchUid",
        "createdAt",
        "updatedAt",
        "processingTimeMs",
        "requestUid",
    ];
    fn walk(v: &mut Value) {
        match v {
            Value::Object(o) => {
                for (k, x) in o.iter_mut() {
                    if VARYING.contains(&k.as_str()) && !x.is_null() {
                        *x = json!("<set>");
                    } else {
                        walk(x);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

/// A transcript of labelled answers (`[status, body]`, or a finished task).
struct Transcript {
    addr: SocketAddr,
    api: Api,
    steps: Vec<(String, Value)>,
}

impl Transcript {
    async fn call(&mut self, label: &str, method: &str, path: &str, body: Option<&str>) -> Value {
        let resp = match body {
            Some(b) => {
                self.api
                    .call(method, path, Some("application/json"), b.as_bytes())
                    .await
            }
            None => self.api.call(method, path, None, b"").await,
        };
        let body: Value = if resp.body.is_empty() {
            // Meilisearch closes the connection after a route it has none for.
            self.api.client = support::http::Client::new(self.addr);
            Value::Null
        } else {
            resp.json()
        };
        let answer = normalize(json!([resp.status, body]));
        self.steps.push((label.to_string(), answer));
        body
    }

    /// A write: its answer, then its finished task.
    async fn write(&mut self, label: &str, method: &str, path: &str, body: &str) -> Value {
        let answer = self.call(label, method, path, Some(body)).await;
        let uid = answer["taskUid"]
            .as_u64()
            .unwrap_or_else(|| panic!("{label}: no task: {answer}"));
        let task = self.api.wait(uid).await;
        self.steps
            .push((format!("{label} (task)"), normalize(task.clone())));
        task
    }
}

async fn scenario(addr: SocketAddr) -> Vec<(String, Value)> {
    let mut t = Transcript {
        addr,
        api: Api::new(addr, Some(KEY)),
        steps: Vec::new(),
    };
    // Ids in insertion order, below 10: Meilisearch's order (internal ids) and the test node's
    // (ids) agree.
    let docs = json!([
        {"id": 1, "title": "Alpha", "genre": "action", "year": 2001, "tags": ["x", "y"]},
        {"id": 2, "title": "Beta", "genre": "drama", "year": 2005},
        {"id": 3, "title": "Gamma", "genre": "Action", "year": 2010, "nested": {"a": 1}},
        {"id": 4, "title": "Delta", "genre": "comedy", "year": 2020},
        {"id": 5, "title": "Epsilon", "genre": "drama", "year": 1999},
        {"id": 6, "title": "Zeta", "year": 1990},
    ]);
    t.write(
        "add",
        "POST",
        "/indexes/movies/documents",
        &docs.to_string(),
    )
    .await;

    // Settings: defaults, a patch, a round trip of what GET shows, resets, refusals.
    t.call(
        "settings (defaults)",
        "GET",
        "/indexes/movies/settings",
        None,
    )
    .await;
    let patch = json!({
        "filterableAttributes": ["genre", "year", "genre"],
        "sortableAttributes": ["year", "genre"],
        "distinctAttribute": "title",
        "synonyms": {"film": ["movie"], "big": ["large", "huge"]},
        "searchableAttributes": ["title", "genre"],
        "displayedAttributes": ["id", "title", "genre", "year"],
        "rankingRules": ["typo", "words", "sort", "exactness"],
        "faceting": {"maxValuesPerFacet": 10},
        "pagination": {"maxTotalHits": 500},
        "typoTolerance": {"minWordSizeForTypos": {"oneTypo": 4}},
    });
    t.write(
        "patch settings",
        "PATCH",
        "/indexes/movies/settings",
        &patch.to_string(),
    )
    .await;
    let shown = t
        .call(
            "settings (patched)",
            "GET",
            "/indexes/movies/settings",
            None,
        )
        .await;
    t.write(
        "patch shown settings onto a new index",
        "PATCH",
        "/indexes/copy/settings",
        &shown.to_string(),
    )
    .await;
    t.call("copy", "GET", "/indexes/copy", None).await;
    t.call("copy settings", "GET", "/indexes/copy/settings", None)
        .await;
    t.write(
        "resets",
        "PATCH",
        "/indexes/copy/settings",
        r#"{"displayedAttributes":null,"synonyms":null,"rankingRules":["words","year:desc","attribute"],"faceting":{"sortFacetValuesBy":{"genre":"count"}},"typoTolerance":{"minWordSizeForTypos":null,"enabled":false}}"#,
    )
    .await;
    t.call(
        "copy settings (reset)",
        "GET",
        "/indexes/copy/settings",
        None,
    )
    .await;
    t.write(
        "put one setting",
        "PUT",
        "/indexes/copy/settings/sortable-attributes",
        r#"["b","a"]"#,
    )
    .await;
    t.call(
        "get one setting",
        "GET",
        "/indexes/copy/settings/sortable-attributes",
        None,
    )
    .await;
    t.write(
        "delete one setting",
        "DELETE",
        "/indexes/copy/settings/sortable-attributes",
        "",
    )
    .await;
    for (label, body) in [
        ("unknown setting", r#"{"foo":1}"#),
        ("wrong type", r#"{"filterableAttributes":"x"}"#),
        ("wrong element", r#"{"sortableAttributes":[1]}"#),
        ("bad ranking rule", r#"{"rankingRules":["words","bogus"]}"#),
        ("not an object", "[]"),
        ("bad distinct", r#"{"distinctAttribute":3}"#),
    ] {
        t.call(label, "PATCH", "/indexes/copy/settings", Some(body))
            .await;
    }
    for (label, method, route, body) in [
        (
            "one setting, wrong type",
            "PUT",
            "filterable-attributes",
            r#""x""#,
        ),
        (
            "one setting, bad rule",
            "PUT",
            "ranking-rules",
            r#"["bogus"]"#,
        ),
        (
            "one setting, bad value",
            "PUT",
            "proximity-precision",
            r#""foo""#,
        ),
        (
            "one setting, wrong method",
            "PUT",
            "faceting",
            r#"{"maxValuesPerFacet":5}"#,
        ),
    ] {
        t.call(
            label,
            method,
            &format!("/indexes/copy/settings/{route}"),
            Some(body),
        )
        .await;
    }
    t.write(
        "patch one struct setting",
        "PATCH",
        "/indexes/copy/settings/faceting",
        r#"{"maxValuesPerFacet":5}"#,
    )
    .await;
    t.call(
        "one struct setting",
        "GET",
        "/indexes/copy/settings/faceting",
        None,
    )
    .await;
    t.write("reset all settings", "DELETE", "/indexes/copy/settings", "")
        .await;
    t.call(
        "copy settings (all reset)",
        "GET",
        "/indexes/copy/settings",
        None,
    )
    .await;
    t.call(
        "settings of a missing index",
        "GET",
        "/indexes/nope/settings",
        None,
    )
    .await;
    t.call("indexes", "GET", "/indexes", None).await;
    t.call("indexes page", "GET", "/indexes?offset=1&limit=1", None)
        .await;

    // Primary keys: inferred, or refused.
    for (label, path, body) in [
        (
            "no key candidate",
            "/indexes/pk1/documents",
            r#"[{"title":"x"}]"#,
        ),
        (
            "two key candidates",
            "/indexes/pk2/documents",
            r#"[{"bid":1,"aid":2}]"#,
        ),
        (
            "no id",
            "/indexes/movies/documents",
            r#"[{"title":"no id"}]"#,
        ),
        (
            "bad id",
            "/indexes/movies/documents",
            r#"[{"id":"bad id!"}]"#,
        ),
        (
            "other key",
            "/indexes/movies/documents?primaryKey=title",
            r#"[{"id":8}]"#,
        ),
    ] {
        t.write(label, "POST", path, body).await;
    }
    t.call("index made by a failed write", "GET", "/indexes/pk1", None)
        .await;

    // Partial update (PUT) against replacement (POST).
    t.write(
        "update",
        "PUT",
        "/indexes/movies/documents",
        r#"[{"id":3,"nested":{"b":2},"title":"Gamma 2"},{"id":7,"title":"Eta","genre":"drama","year":2003}]"#,
    )
    .await;
    t.write(
        "replace",
        "POST",
        "/indexes/movies/documents",
        r#"[{"id":2,"title":"Beta 2","genre":"drama","year":2006}]"#,
    )
    .await;
    t.call("updated", "GET", "/indexes/movies/documents/3", None)
        .await;
    t.call("replaced", "GET", "/indexes/movies/documents/2", None)
        .await;

    // Browsing.
    for (label, query) in [
        ("browse", ""),
        ("browse a page", "?limit=2&offset=1"),
        (
            "browse by filter",
            "?filter=genre%20%3D%20action&fields=id,title",
        ),
        ("browse by ids", "?ids=1,5,9"),
        ("browse, no limit", "?limit=0"),
        ("browse, unfilterable", "?filter=title%20%3D%20Alpha"),
        ("browse, bad filter", "?filter=genre%20%3D"),
        ("browse, bad limit", "?limit=x"),
        ("browse, unknown parameter", "?foo=1"),
    ] {
        t.call(
            label,
            "GET",
            &format!("/indexes/movies/documents{query}"),
            None,
        )
        .await;
    }
    t.call(
        "browse a missing index",
        "GET",
        "/indexes/nope/documents",
        None,
    )
    .await;
    for filter in [
        "genre = action OR",
        "(genre = action",
        "genre IN [a, b",
        "genre IN a",
        "genre IS foo",
        "genre NOT foo",
        "genre foo",
        "= x",
        "genre = \"action",
        "genre = a b",
        "genre = 'it''s'",
        "genre = \"a\\\"b\"",
        "year > abc",
        "genre a TO d",
        "NOT NOT genre = drama",
        "genre IS NOT NULL AND genre IS NOT EMPTY",
        "  ",
    ] {
        let body = json!({"filter": filter, "fields": ["id"]}).to_string();
        t.call(
            &format!("fetch by `{filter}`"),
            "POST",
            "/indexes/movies/documents/fetch",
            Some(&body),
        )
        .await;
    }

    // Search.
    for (label, body) in [
        ("search by filter", json!({"filter": "genre = action"})),
        (
            "search by array filter",
            json!({"filter": ["year > 2000", ["genre = drama", "genre = comedy"]], "limit": 2, "offset": 1}),
        ),
        (
            "search, nested filter",
            json!({"filter": "(genre = action OR year < 1995) AND NOT year = 2010"}),
        ),
        (
            "search by ranges",
            json!({"filter": "year 2000 TO 2006 AND genre != drama"}),
        ),
        (
            "search, IN and EXISTS",
            json!({"filter": "genre IN [Comedy, drama] OR genre NOT EXISTS"}),
        ),
        (
            "search by page",
            json!({"filter": "year >= 2000", "hitsPerPage": 2, "page": 2}),
        ),
        ("search, first page", json!({"page": 1})),
        ("search, no hits per page", json!({"hitsPerPage": 0})),
        ("search, empty filter", json!({"filter": "", "limit": 1})),
        (
            "search, unfilterable",
            json!({"filter": "genre = action AND (title = Alpha OR NOT nested EXISTS)"}),
        ),
        (
            "search, unfilterable in array",
            json!({"filter": ["genre = action", "title IN [a, b]"]}),
        ),
        ("search, bad syntax", json!({"filter": "genre = "})),
        ("search, bad type", json!({"filter": 3})),
        ("search, bad item", json!({"filter": [3]})),
        ("search, bad inner item", json!({"filter": [[true]]})),
    ] {
        t.call(
            label,
            "POST",
            "/indexes/movies/search",
            Some(&body.to_string()),
        )
        .await;
    }
    t.call(
        "search a missing index",
        "POST",
        "/indexes/nope/search",
        Some(r#"{"filter":"genre = "}"#),
    )
    .await;

    // Deletion by filter.
    for (label, body) in [
        ("delete, bad filter", r#"{"filter":"genre = "}"#),
        ("delete, empty filter", r#"{"filter":""}"#),
        ("delete, empty array", r#"{"filter":[[]]}"#),
        ("delete, no filter", "{}"),
        ("delete, null filter", r#"{"filter":null}"#),
        ("delete, unknown field", r#"{"filter":"year = 1","foo":1}"#),
        ("delete, not an object", "[]"),
    ] {
        t.call(
            label,
            "POST",
            "/indexes/movies/documents/delete",
            Some(body),
        )
        .await;
    }
    t.write(
        "delete, unfilterable",
        "POST",
        "/indexes/movies/documents/delete",
        r#"{"filter":"title = Alpha"}"#,
    )
    .await;
    t.write(
        "delete in a missing index",
        "POST",
        "/indexes/nope/documents/delete",
        r#"{"filter":"genre = action"}"#,
    )
    .await;
    t.write(
        "delete by filter",
        "POST",
        "/indexes/movies/documents/delete",
        r#"{"filter":"genre = drama AND year > 2000"}"#,
    )
    .await;
    t.write(
        "delete by array filter",
        "POST",
        "/indexes/movies/documents/delete",
        r#"{"filter":["year < 2002", ["genre = action", "genre NOT EXISTS"]]}"#,
    )
    .await;
    t.call("left", "GET", "/indexes/movies/documents", None)
        .await;

    // Tasks.
    for (label, query) in [
        ("tasks", "?limit=3"),
        ("tasks from", "?limit=2&from=5"),
        ("tasks, last page", "?limit=2&from=1"),
        ("tasks, no limit", "?limit=0"),
        ("failed tasks", "?statuses=failed"),
        (
            "deletions in movies",
            "?types=documentDeletion&indexUids=movies",
        ),
        (
            "settings or additions",
            "?types=settingsUpdate,documentAdditionOrUpdate&statuses=succeeded&limit=2",
        ),
        ("tasks by uid", "?uids=1,3,99"),
        ("tasks, every status", "?statuses=*&limit=1"),
        ("tasks, reversed", "?reverse=true&limit=2&from=3"),
        (
            "tasks before tomorrow",
            "?beforeEnqueuedAt=2100-01-01&limit=1",
        ),
        ("tasks after tomorrow", "?afterEnqueuedAt=2100-01-01"),
        ("tasks, bad status", "?statuses=finished"),
        ("tasks, bad type", "?types=bogus"),
        ("tasks, bad uid", "?uids=1,cat"),
        ("tasks, bad limit", "?limit=-1"),
        ("tasks, bad index", "?indexUids=bad!"),
        ("tasks, bad date", "?afterEnqueuedAt=2021-12"),
        ("tasks, unknown parameter", "?foo=1"),
    ] {
        t.call(label, "GET", &format!("/tasks{query}"), None).await;
    }
    t.steps
}

/// Checks the answers the scenario needs of any Meilisearch-compatible node.
fn check(steps: &[(String, Value)]) {
    let step = |label: &str| {
        steps
            .iter()
            .find(|(l, _)| l == label)
            .unwrap_or_else(|| panic!("no step {label}"))
            .1
            .clone()
    };
    assert_eq!(step("updated")[1]["nested"], json!({"b": 2}));
    assert_eq!(step("updated")[1]["year"], 2010, "PUT merges");
    assert_eq!(
        step("replaced")[1],
        json!({"id": 2, "title": "Beta 2", "genre": "drama", "year": 2006})
    );
    assert_eq!(
        step("patch shown settings onto a new index (task)")["status"],
        "succeeded"
    );
    assert_eq!(
        step("copy settings")[1],
        step("settings (patched)")[1],
        "a settings object GET shows is accepted back"
    );
    let deleted = step("delete by filter (task)");
    assert_eq!(deleted["type"], "documentDeletion");
    assert_eq!(
        deleted["details"],
        json!({"providedIds": 0, "deletedDocuments": 2, "originalFilter": "\"genre = drama AND year > 2000\""})
    );
    assert_eq!(step("delete, bad filter")[0], 400);
    assert_eq!(
        step("delete, unfilterable (task)")["error"]["code"],
        "invalid_document_filter"
    );
    let page = &step("search by page")[1];
    assert_eq!(
        (page["totalHits"].clone(), page["totalPages"].clone()),
        (json!(5), json!(3))
    );
    let tasks = &step("tasks from")[1];
    assert_eq!(
        (tasks["from"].clone(), tasks["next"].clone()),
        (json!(5), json!(3))
    );
    assert_eq!(
        step("tasks, bad status")[1]["code"],
        "invalid_task_statuses"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_routes_answer_as_meilisearch_does() {
    let node = FakeNode::start("fake", Some(KEY)).await;
    let steps = scenario(node.addr).await;
    check(&steps);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_routes_match_real_meilisearch() {
    let Some(bin) = meili::binary() else {
        meili::skip_notice("fake_routes_match_real_meilisearch");
        return;
    };
    let real = meili::MeiliNode::start(&bin, KEY).await;
    let want = scenario(real.addr).await;
    check(&want);
    let node = FakeNode::start("fake", Some(KEY)).await;
    let got = scenario(node.addr).await;
    let mut differences = Vec::new();
    for ((label, real), (_, fake)) in want.iter().zip(&got) {
        if real != fake {
            differences.push(format!("{label}:\n  real: {real}\n  fake: {fake}"));
        }
    }
    assert!(
        differences.is_empty(),
        "{} answers differ:\n{}",
        differences.len(),
        differences.join("\n")
    );
}
