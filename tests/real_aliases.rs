//! Blue-green reindexing through Miroir over three real Meilisearch nodes, with readers
//! looping all along: by alias (fill the new index, flip, flip back) and by
//! `POST /swap-indexes`. No reader may see an answer mixing the two versions. Runs when a
//! `meilisearch` binary is found, and says so loudly when it is not.

use crate::support;

use std::time::Duration;

use serde_json::{json, Value};
use support::gateway::{Extra, GatewayProcess};
use support::meili;
use support::meili_api::{sees_peers, Api};
use support::readers::{docs, swap_times, Readers};
use support::redis::RedisServer;

const KEY: &str = "real-aliases-master-key-0123456789";

async fn fill(api: &mut Api, index: &str, v: &str, first: usize, n: usize) {
    let body = docs(v, first, n).to_string();
    let path = format!("/indexes/{index}/documents");
    let task = api
        .write("POST", &path, Some("application/json"), body.as_bytes())
        .await;
    assert_eq!(task["status"], "succeeded", "{task}");
}

async fn flip(api: &mut Api, alias: &str, targets: Value) {
    let resp = api
        .json(
            "PATCH",
            &format!("/_miroir/aliases/{alias}"),
            &json!({"targets": targets}),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_reindexing_never_shows_a_mixed_answer() {
    let Some(bin) = meili::binary() else {
        meili::skip_notice("blue_green_reindexing_never_shows_a_mixed_answer");
        return;
    };
    let (nodes, entries) = meili::real_nodes(&bin, KEY, 3).await;
    let gw =
        GatewayProcess::start(&entries, &Extra::default(), &[("MIROIR_MASTER_KEY", KEY)]).await;
    let mut api = Api::new(gw.addr, Some(KEY));

    // By alias: readers on `shop` while `green` is filled, then flips and a flip back.
    fill(&mut api, "blue", "v1", 0, 300).await;
    let resp = api
        .json(
            "POST",
            "/_miroir/aliases",
            &json!({"name": "shop", "targets": ["blue"]}),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    let readers = Readers::start(gw.addr, Some(KEY), "shop", 3);
    for batch in 0..3 {
        fill(&mut api, "green", "v2", batch * 100, 100).await;
    }
    for targets in [json!(["green"]), json!(["blue"]), json!(["green"])] {
        flip(&mut api, "shop", targets).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let by_alias = readers.finish().await;
    eprintln!("blue-green by alias: {by_alias:?}");
    assert!(by_alias.answers > 20, "{by_alias:?}");
    assert_eq!((by_alias.failed, by_alias.mixed), (0, 0), "{by_alias:?}");
    assert_eq!(by_alias.seen.len(), 2, "{by_alias:?}");

    // An alias over both: its search is the federated search over its targets.
    let resp = api
        .json(
            "POST",
            "/_miroir/aliases",
            &json!({"name": "both", "targets": ["blue", "green"]}),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    let by_alias = api
        .json(
            "POST",
            "/indexes/both/search",
            &json!({"q": "shoe", "limit": 30, "offset": 5}),
        )
        .await;
    assert_eq!(by_alias.status, 200, "{}", by_alias.text());
    let federated = api
        .json(
            "POST",
            "/multi-search",
            &json!({"federation": {"limit": 30, "offset": 5}, "queries": [
                {"indexUid": "blue", "q": "shoe"}, {"indexUid": "green", "q": "shoe"}]}),
        )
        .await;
    assert_eq!(federated.status, 200, "{}", federated.text());
    let (a, f) = (by_alias.json(), federated.json());
    assert_eq!(a["query"], "shoe");
    assert_eq!(a["hits"], f["hits"]);
    assert_eq!(a["estimatedTotalHits"], f["estimatedTotalHits"]);
    assert_eq!(a["hits"].as_array().unwrap().len(), 30);
    let resp = api
        .json("POST", "/indexes/both/documents", &json!([{"id": 1}]))
        .await;
    assert_eq!(resp.status, 409, "{}", resp.text());

    // By swap. First as a plain broadcast does it (each node swaps on its own, sent straight
    // to them): the figure is printed, not asserted, as it depends on timing.
    let readers = Readers::start(gw.addr, Some(KEY), "blue", 3);
    let body = json!([{"indexes": ["blue", "green"]}]).to_string();
    for _ in 0..5 {
        let mut direct: Vec<Api> = nodes.iter().map(|n| Api::new(n.addr, Some(KEY))).collect();
        let swaps = direct.iter_mut().map(|a| {
            a.write(
                "POST",
                "/swap-indexes",
                Some("application/json"),
                body.as_bytes(),
            )
        });
        futures::future::join_all(swaps).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let plain = readers.finish().await;
    eprintln!("swap-indexes sent to each node on its own: {plain:?}");

    // Then through the gateway: no mixed answer.
    let readers = Readers::start(gw.addr, Some(KEY), "blue", 3);
    swap_times(&mut api, ("blue", "green"), 5, Duration::from_millis(100)).await;
    let gated = readers.finish().await;
    eprintln!("swap-indexes through Miroir: {gated:?}");
    assert_eq!((gated.failed, gated.mixed), (0, 0), "{gated:?}");
    assert_eq!(gated.seen.len(), 2, "{gated:?}");

    // A rename takes the same path: done on every node before it is answered.
    let task = api
        .write(
            "PATCH",
            "/indexes/green",
            Some("application/json"),
            br#"{"uid":"teal"}"#,
        )
        .await;
    assert_eq!(task["status"], "succeeded", "{task}");
    let resp = api
        .json("POST", "/indexes/teal/search", &json!({"limit": 1000}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["hits"].as_array().unwrap().len(), 300);
    let gone = api.json("POST", "/indexes/green/search", &json!({})).await;
    assert_eq!(gone.status, 404, "{}", gone.text());
}

/// Two gateways on one Redis over the same three nodes: a swap through one holds the readers
/// of the other until every node has swapped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_through_one_gateway_holds_the_readers_of_another() {
    let test = "a_swap_through_one_gateway_holds_the_readers_of_another";
    let Some(bin) = meili::binary() else {
        meili::skip_notice(test);
        return;
    };
    let Some(redis) = RedisServer::start(test) else {
        return;
    };
    let (_nodes, entries) = meili::real_nodes(&bin, KEY, 3).await;
    let extra = Extra {
        tail: redis.state_config("swaps1"),
        ..Extra::default()
    };
    let env = [("MIROIR_MASTER_KEY", KEY)];
    let ga = GatewayProcess::start(&entries, &extra, &env).await;
    let gb = GatewayProcess::start(&entries, &extra, &env).await;
    let mut a = Api::new(ga.addr, Some(KEY));
    fill(&mut a, "blue", "v1", 0, 300).await;
    fill(&mut a, "green", "v2", 0, 300).await;
    // Each gateway learns of the other from its announcements.
    assert!(sees_peers(&mut a).await, "gateway A never saw gateway B");

    let readers = Readers::start(gb.addr, Some(KEY), "blue", 3);
    swap_times(&mut a, ("blue", "green"), 6, Duration::from_millis(100)).await;
    let other = readers.finish().await;
    eprintln!("swap-indexes through gateway A, readers on gateway B: {other:?}");
    assert_eq!(
        (other.failed, other.mixed),
        (0, 0),
        "{other:?}\n{}",
        gb.log()
    );
    assert_eq!(other.seen.len(), 2, "{other:?}");
}
