//! End to end against real Meilisearch nodes, when a `meilisearch` binary is available
//! (`MEILI_BIN` or `PATH`); otherwise each test prints a loud SKIPPED line and passes.

mod support;

use support::gateway::{Extra, GatewayProcess, NodeEntry};
use support::http::Client;
use support::meili::{self, MeiliNode};

const KEY: &str = "miroir-e2e-master-key-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_version_and_one_node_routes_through_real_nodes() {
    let Some(bin) = meili::binary() else {
        meili::skip_notice("health_version_and_one_node_routes_through_real_nodes");
        return;
    };
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(MeiliNode::start(&bin, KEY).await);
    }
    let entries: Vec<NodeEntry> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| NodeEntry::new(&format!("m{i}"), &n.url(), "a"))
        .collect();
    let gw =
        GatewayProcess::start(&entries, &Extra::default(), &[("MIROIR_MASTER_KEY", KEY)]).await;
    let bearer = format!("Bearer {KEY}");
    let auth = [("authorization", bearer.as_str())];
    let mut through = Client::new(gw.addr);
    let mut direct = Client::new(nodes[0].addr);

    let health = through.get("/health").await.unwrap();
    assert_eq!(
        (health.status, health.json()),
        (200, serde_json::json!({"status": "available"}))
    );

    // One-node routes answer exactly as a node does, including its auth errors.
    for (path, headers) in [
        ("/version", &auth[..]),
        ("/indexes", &auth[..]),
        ("/indexes/missing", &auth[..]),
        ("/indexes/missing/settings", &auth[..]),
        ("/keys", &auth[..]),
        ("/version", &[][..]),
        ("/version", &[("authorization", "Bearer nope")][..]),
    ] {
        let a = through.send("GET", path, headers, b"").await.unwrap();
        let b = direct.send("GET", path, headers, b"").await.unwrap();
        assert_eq!(a.status, b.status, "{path}");
        let (mut ja, mut jb) = (a.json(), b.json());
        // Each node makes its own default keys (random uids, hence different key strings):
        // only keys created through the gateway are the same everywhere (see the README).
        if path == "/keys" {
            for j in [&mut ja, &mut jb] {
                for k in j["results"].as_array_mut().unwrap() {
                    k.as_object_mut()
                        .unwrap()
                        .retain(|f, _| f == "name" || f == "actions" || f == "indexes");
                }
            }
        }
        assert_eq!(ja, jb, "{path}");
    }

    // Gateway-owned routes check the key with a node first.
    let denied = through
        .send("GET", "/tasks", &[("authorization", "Bearer nope")], b"")
        .await
        .unwrap();
    assert_eq!(denied.status, 403);
    assert_eq!(denied.json()["code"], "invalid_api_key");
}
