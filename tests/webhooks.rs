//! Webhooks through Miroir belong to the gateway: created, listed, changed and deleted by one
//! uuid, kept across restarts, and called once per finished gateway task with a node's
//! payload (gzipped NDJSON of task views) and the webhook's headers. Errors as a node's.

use crate::support;

use std::time::Duration;

use serde_json::{json, Value};
use support::fake_node::FakeNode;
use support::gateway::{eventually, Extra, GatewayProcess, NodeEntry};
use support::meili::{self, ReferenceAndFleet};
use support::meili_api::Api;
use support::webhook_receiver::{gunzip, receiver};

const KEY: &str = "webhooks-master-key-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_the_gateways_own() {
    let nodes = FakeNode::three(Some(KEY)).await;
    let entries = NodeEntry::for_fakes(&nodes);
    let mut gw =
        GatewayProcess::start(&entries, &Extra::default(), &[("MIROIR_MASTER_KEY", KEY)]).await;
    let mut api = Api::new(gw.addr, Some(KEY));
    let (url, got) = receiver().await;

    let secret = "Bearer 0123456789abcdefghijklmnopqrstuvwxyz";
    let body = json!({"url": url, "headers": {"Authorization": secret, "X-Test": "1"}});
    let created = api.json("POST", "/webhooks", &body).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let hook = created.json();
    let uuid = hook["uuid"].as_str().unwrap().to_string();
    assert_eq!(hook["isEditable"], true);
    assert_eq!(hook["headers"]["Authorization"], "Bearer 01234XXXXXX...");
    assert_eq!(hook["headers"]["X-Test"], "1");
    let listed = api.get("/webhooks").await.json();
    assert_eq!(listed["results"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["results"][0], hook);
    // The nodes were only asked to judge (a key check: a read, or a malformed body; a change
    // of a webhook that does not exist), never to create one.
    for node in &nodes {
        for m in node.received("/webhooks") {
            let probe = m.method != "POST" || m.body == b"{";
            assert!(probe, "{} got {} {}", node.name, m.method, m.text());
        }
    }

    // A write through the gateway: one call, with the gateway's task.
    let resp = api
        .json("POST", "/indexes/m/documents", &json!([{"id": 1}]))
        .await;
    let task = resp.json()["taskUid"].as_u64().unwrap();
    assert_eq!(api.wait(task).await["status"], "succeeded");
    let called = eventually(Duration::from_secs(10), async || {
        got.lock()
            .unwrap()
            .iter()
            .any(|m| gunzip(&m.body).contains(&format!("\"uid\":{task},")))
    })
    .await;
    assert!(called, "no call for task {task}: {}", gw.log());
    let call = got
        .lock()
        .unwrap()
        .iter()
        .find(|m| gunzip(&m.body).contains(&format!("\"uid\":{task},")))
        .cloned()
        .unwrap();
    assert_eq!(call.method, "POST");
    assert_eq!(call.header("content-encoding"), Some("gzip"));
    assert_eq!(call.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(call.header("authorization"), Some(secret));
    assert_eq!(call.header("x-test"), Some("1"));
    let line = gunzip(&call.body);
    let view: Value = line
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["uid"] == task)
        .unwrap();
    assert_eq!(view["status"], "succeeded");
    assert_eq!(view["indexUid"], "m");

    // Changed, kept across a restart, deleted.
    let path = format!("/webhooks/{uuid}");
    let patched = api
        .json("PATCH", &path, &json!({"headers": {"X-Test": null}}))
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text());
    assert_eq!(patched.json()["headers"].as_object().unwrap().len(), 1);
    gw.restart().await;
    let mut api = Api::new(gw.addr, Some(KEY));
    assert_eq!(api.get(&path).await.json(), patched.json());

    let nil = "/webhooks/00000000-0000-0000-0000-000000000000";
    let cases = [
        (
            "PATCH",
            nil.to_string(),
            json!({}),
            400,
            "immutable_webhook",
        ),
        (
            "PATCH",
            format!("/webhooks/{}", uuid::Uuid::new_v4()),
            json!({}),
            404,
            "webhook_not_found",
        ),
        (
            "GET",
            "/webhooks/nope".to_string(),
            Value::Null,
            400,
            "invalid_webhook_uuid",
        ),
        (
            "POST",
            "/webhooks".to_string(),
            json!({"url": "not a url"}),
            400,
            "invalid_webhook_url",
        ),
        (
            "POST",
            "/webhooks".to_string(),
            json!({}),
            400,
            "invalid_webhook_url",
        ),
        (
            "POST",
            "/webhooks".to_string(),
            json!({"nope": 1}),
            400,
            "bad_request",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let resp = if body.is_null() {
            api.get(&path).await
        } else {
            api.json(method, &path, &body).await
        };
        assert_eq!(
            (resp.status, resp.json()["code"].clone()),
            (status, json!(code)),
            "{method} {path}"
        );
    }
    for i in 1..20 {
        let r = api
            .json(
                "POST",
                "/webhooks",
                &json!({"url": format!("https://h{i}.test")}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let r = api
        .json(
            "POST",
            "/webhooks",
            &json!({"url": "https://one-too-many.test"}),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (400, json!("invalid_webhooks"))
    );
    let deleted = api.call("DELETE", &path, None, b"").await;
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    assert_eq!(api.get(&path).await.status, 404);
    let no_key = Api::new(gw.addr, None).get("/webhooks").await;
    assert_eq!(no_key.status, 401);
}

/// The same webhook requests to one real node and to Miroir over three: the same answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_answers_match_a_node_on_real_meilisearch() {
    let Some(bin) = meili::binary() else {
        meili::skip_notice("webhook_answers_match_a_node_on_real_meilisearch");
        return;
    };
    let fleet = ReferenceAndFleet::start(&bin, KEY).await;
    let mut a = Api::new(fleet.single.addr, Some(KEY));
    let mut b = Api::new(fleet.gateway.addr, Some(KEY));
    let strip = |mut v: Value| {
        if let Some(o) = v.as_object_mut() {
            o.remove("uuid");
        }
        v
    };
    let body = json!({"url": "https://example.test/hook", "headers": {"authorization": "Bearer abcdefghijklmnopqrstuvwxyz0123", "X-A": "b"}});
    let (ca, cb) = (
        a.json("POST", "/webhooks", &body).await,
        b.json("POST", "/webhooks", &body).await,
    );
    assert_eq!((ca.status, strip(ca.json())), (cb.status, strip(cb.json())));
    let (ua, ub) = (
        ca.json()["uuid"].as_str().unwrap().to_string(),
        cb.json()["uuid"].as_str().unwrap().to_string(),
    );
    let mut failures = Vec::new();
    let nil = "00000000-0000-0000-0000-000000000000";
    let missing = uuid::Uuid::new_v4().to_string();
    let requests: Vec<(&str, String, String, Value)> = vec![
        (
            "PATCH",
            format!("/webhooks/{ua}"),
            format!("/webhooks/{ub}"),
            json!({"headers": {"X-A": null, "X-B": "c"}}),
        ),
        (
            "PATCH",
            format!("/webhooks/{ua}"),
            format!("/webhooks/{ub}"),
            json!({"url": null}),
        ),
        (
            "PATCH",
            format!("/webhooks/{ua}"),
            format!("/webhooks/{ub}"),
            json!({"url": 3}),
        ),
        (
            "PATCH",
            format!("/webhooks/{ua}"),
            format!("/webhooks/{ub}"),
            json!({"nope": 1}),
        ),
        (
            "PATCH",
            format!("/webhooks/{nil}"),
            format!("/webhooks/{nil}"),
            json!({}),
        ),
        (
            "PATCH",
            format!("/webhooks/{missing}"),
            format!("/webhooks/{missing}"),
            json!({}),
        ),
        (
            "PATCH",
            "/webhooks/nope".into(),
            "/webhooks/nope".into(),
            json!({}),
        ),
        (
            "POST",
            "/webhooks".into(),
            "/webhooks".into(),
            json!({"url": "not a url"}),
        ),
        (
            "POST",
            "/webhooks".into(),
            "/webhooks".into(),
            json!({"headers": {}}),
        ),
        (
            "POST",
            "/webhooks".into(),
            "/webhooks".into(),
            json!({"url": "https://x.test", "headers": {"bad name": "v"}}),
        ),
        (
            "GET",
            format!("/webhooks/{missing}"),
            format!("/webhooks/{missing}"),
            Value::Null,
        ),
        (
            "GET",
            "/webhooks/nope".into(),
            "/webhooks/nope".into(),
            Value::Null,
        ),
        (
            "DELETE",
            format!("/webhooks/{nil}"),
            format!("/webhooks/{nil}"),
            Value::Null,
        ),
    ];
    for (method, pa, pb, body) in requests {
        let (ra, rb) = if body.is_null() {
            (
                a.call(method, &pa, None, b"").await,
                b.call(method, &pb, None, b"").await,
            )
        } else {
            (
                a.json(method, &pa, &body).await,
                b.json(method, &pb, &body).await,
            )
        };
        let (ja, jb) = (
            strip(serde_json::from_slice(&ra.body).unwrap_or(Value::Null)),
            strip(serde_json::from_slice(&rb.body).unwrap_or(Value::Null)),
        );
        // Uuids in messages are each server's own.
        let msg = |v: &Value| {
            v["message"].as_str().map(|m| {
                m.split('`')
                    .map(|part| {
                        if uuid::Uuid::parse_str(part).is_ok() {
                            "U"
                        } else {
                            part
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("`")
            })
        };
        if ra.status != rb.status
            || ja["code"] != jb["code"]
            || msg(&ja) != msg(&jb)
            || (ra.status < 300 && ja != jb)
        {
            failures.push(format!(
                "{method} {pa} {body}: node {} {ja} / miroir {} {jb}",
                ra.status, rb.status
            ));
        }
    }
    let (la, lb) = (
        a.get("/webhooks").await.json(),
        b.get("/webhooks").await.json(),
    );
    assert_eq!(
        la["results"]
            .as_array()
            .map(|r| r.iter().cloned().map(strip).collect::<Vec<_>>()),
        lb["results"]
            .as_array()
            .map(|r| r.iter().cloned().map(strip).collect::<Vec<_>>())
    );
    for node in &fleet.nodes {
        let direct = Api::new(node.addr, Some(KEY)).get("/webhooks").await.json();
        assert_eq!(direct["results"], json!([]), "a node holds a webhook");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
