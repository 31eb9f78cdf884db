//! Aliases shared by two gateways through Redis: a flip through one is in use on the other
//! before the flip is acknowledged, so a client that flipped and then reads through any
//! gateway reads the new target.

use crate::support;

use serde_json::{json, Value};
use support::fake_node::FakeNode;
use support::gateway::{Extra, GatewayProcess, NodeEntry};
use support::meili_api::{sees_peers, Api};
use support::readers::docs;
use support::redis::RedisServer;

const KEY: &str = "shared-aliases-master-key-0123";

async fn versions(api: &mut Api, index: &str) -> Vec<String> {
    let path = format!("/indexes/{index}/search");
    let resp = api.json("POST", &path, &json!({"limit": 100})).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    support::readers::versions(&resp.json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flip_through_one_gateway_is_used_by_the_other_before_it_is_acknowledged() {
    let Some(redis) = RedisServer::start("a_flip_through_one_gateway_is_used_by_the_other") else {
        return;
    };
    let mut nodes = Vec::new();
    for name in ["n1", "n2"] {
        nodes.push(FakeNode::start(name, Some(KEY)).await);
    }
    let entries: Vec<NodeEntry> = nodes
        .iter()
        .map(|n| NodeEntry::new(&n.name, &n.url(), "a"))
        .collect();
    let extra = Extra {
        tail: redis.state_config("aliases1"),
        ..Extra::default()
    };
    let env = [("MIROIR_MASTER_KEY", KEY)];
    let ga = GatewayProcess::start(&entries, &extra, &env).await;
    let gb = GatewayProcess::start(&entries, &extra, &env).await;
    let mut a = Api::new(ga.addr, Some(KEY));
    let mut b = Api::new(gb.addr, Some(KEY));
    for (index, v) in [("blue", "v1"), ("green", "v2")] {
        let body = docs(v, 0, 10).to_string();
        let path = format!("/indexes/{index}/documents");
        a.write("POST", &path, Some("application/json"), body.as_bytes())
            .await;
    }
    // Each gateway learns of the other from its announcements.
    assert!(sees_peers(&mut a).await, "gateway A never saw gateway B");

    let created = a
        .json(
            "POST",
            "/_miroir/aliases",
            &json!({"name": "shop", "targets": ["blue"]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert!(
        created.json().get("unconfirmedGateways").is_none(),
        "{}",
        created.text()
    );
    assert_eq!(versions(&mut b, "shop").await, ["v1"]);
    for (i, (target, v)) in [("green", "v2"), ("blue", "v1")]
        .iter()
        .cycle()
        .take(6)
        .enumerate()
    {
        let (flipper, reader) = if i % 2 == 0 {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        let resp = flipper
            .json(
                "PATCH",
                "/_miroir/aliases/shop",
                &json!({"targets": [target]}),
            )
            .await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert!(
            resp.json().get("unconfirmedGateways").is_none(),
            "{}",
            resp.text()
        );
        // Right after the acknowledgement, the other gateway uses the new target.
        assert_eq!(versions(reader, "shop").await, [*v], "flip {i} to {target}");
    }
    let listed: Value = b.get("/_miroir/aliases/shop").await.json();
    assert_eq!(listed["history"].as_array().unwrap().len(), 6, "{listed}");
}
