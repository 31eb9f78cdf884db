//! Copying a shard to its new owner: the target prepared (indexes, settings, leftovers
//! cleared), then the documents node to node with `/export`, or through the gateway.

use std::time::{Duration, Instant};

use http::Method;
use serde_json::{json, Map, Value};

use super::nodes::{task_uid, NodeApi};
use super::Rebalancer;
use crate::shard_tag;

/// Creates the index on the target if missing and gives it the source's settings where
/// they differ; the target's tasks to wait for, and whether each must succeed.
pub(super) async fn prepare_index(
    src: &NodeApi<'_>,
    dst: &NodeApi<'_>,
    uid: &str,
    primary_key: Option<&str>,
) -> Result<Vec<(u64, bool)>, String> {
    let mut tasks = Vec::new();
    if !dst.has_index(uid).await? {
        let body = json!({"uid": uid, "primaryKey": primary_key});
        // Another write may be creating it too: that task may fail, harmlessly.
        tasks.push((
            task_uid(&dst.ok(Method::POST, "/indexes", Some(&body)).await?)?,
            false,
        ));
    }
    let path = format!("/indexes/{uid}/settings");
    let want = src.ok(Method::GET, &path, None).await?;
    let have = match dst.call(Method::GET, &path, None).await? {
        (200, v) => v,
        _ => Value::Null,
    };
    let mut diff = Map::new();
    if let Value::Object(want) = want {
        for (k, v) in want {
            if have.get(&k) != Some(&v) {
                diff.insert(k, v);
            }
        }
    }
    if !diff.is_empty() {
        let answer = dst
            .ok(Method::PATCH, &path, Some(&Value::Object(diff)))
            .await?;
        tasks.push((task_uid(&answer)?, true));
    }
    Ok(tasks)
}

/// Deletes the shard's documents from every index of the node that has them.
pub(super) async fn clear(
    node: &NodeApi<'_>,
    indexes: &[(String, Option<String>)],
    shard: u32,
) -> Result<(), String> {
    let mut tasks = Vec::new();
    for (uid, _) in indexes {
        if node.has_index(uid).await? {
            tasks.push(node.delete_shard(uid, shard).await?);
        }
    }
    for uid in tasks {
        node.wait(uid).await?;
    }
    Ok(())
}

/// How long a probe export may take before the source is taken to refuse the target.
const PROBE_WAIT: Duration = Duration::from_secs(5);

/// Whether `src` can export to `dst`. A node refuses private and loopback targets outside
/// `--experimental-allowed-ip-networks` only when its export task runs, retrying for
/// minutes with its task queue held: a probe that matches no document shows it within
/// seconds, and is canceled if it hangs.
async fn can_export(
    r: &Rebalancer,
    src: &NodeApi<'_>,
    dst: &NodeApi<'_>,
    index: &str,
) -> Result<(), String> {
    let body = export_body(r, dst, &[index.to_string()], "_miroir_shard = \"probe\"");
    let answer = src.ok(Method::POST, "/export", Some(&body)).await?;
    let uid = task_uid(&answer)?;
    let deadline = Instant::now() + PROBE_WAIT;
    loop {
        let task = src.ok(Method::GET, &format!("/tasks/{uid}"), None).await?;
        match task["status"].as_str() {
            Some("succeeded") => return Ok(()),
            Some("failed" | "canceled") => {
                return Err(format!("its export failed: {}", task["error"]["message"]))
            }
            _ if Instant::now() > deadline => {
                src.ok(Method::POST, &format!("/tasks/cancel?uids={uid}"), None)
                    .await?;
                return Err(format!(
                    "its export to {} made no progress in {} s (refused address?)",
                    dst.node.url,
                    PROBE_WAIT.as_secs()
                ));
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn export_body(r: &Rebalancer, dst: &NodeApi<'_>, indexes: &[String], filter: &str) -> Value {
    let per_index: Map<String, Value> = indexes
        .iter()
        .map(|uid| {
            (
                uid.clone(),
                json!({"filter": filter, "overrideSettings": false}),
            )
        })
        .collect();
    let mut body = json!({"url": dst.node.url, "indexes": per_index});
    if let Some(key) = r.fleet.master.as_ref().and_then(|k| k.to_str().ok()) {
        body["apiKey"] = Value::from(key.trim_start_matches("Bearer "));
    }
    body
}

/// Node to node: the source pushes the shard's documents of every index, from one read
/// snapshot, to the target's documents API. The documents the target holds after.
pub(super) async fn export(
    r: &Rebalancer,
    src: &NodeApi<'_>,
    dst: &NodeApi<'_>,
    indexes: &[(String, Option<String>)],
    shard: u32,
) -> Result<u64, String> {
    let Some((first, _)) = indexes.first() else {
        return Ok(0);
    };
    // An export left by a gateway stopped mid-copy (a hanging probe holds the node's queue
    // for minutes): only the gateway exports (clients get 501), so cancel any still there.
    let stale = "/tasks/cancel?types=export&statuses=enqueued,processing";
    if let Err(e) = src.ok(Method::POST, stale, None).await {
        log::warn!(
            "rebalance: cannot cancel stale exports on {}: {e}",
            src.node.id
        );
    }
    let probed = r
        .export_ok
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&(src.node.id.clone(), dst.node.id.clone()));
    if !probed {
        can_export(r, src, dst, first).await?;
        r.export_ok
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((src.node.id.clone(), dst.node.id.clone()));
    }
    let uids: Vec<String> = indexes.iter().map(|(uid, _)| uid.clone()).collect();
    let body = export_body(r, dst, &uids, &shard_tag::filter(&[shard]));
    let answer = src.ok(Method::POST, "/export", Some(&body)).await?;
    let uid = task_uid(&answer)?;
    if let Err(e) = src.wait(uid).await {
        // A hung export holds the source's queue: cancel it before copying another way.
        let _ = src
            .ok(Method::POST, &format!("/tasks/cancel?uids={uid}"), None)
            .await;
        return Err(e);
    }
    // The export has handed every batch to the target; wait for it to index them.
    dst.drain(dst.latest_task().await?, Duration::from_secs(3600))
        .await?;
    let mut copied = 0;
    for (uid, _) in indexes {
        if dst.has_index(uid).await? {
            copied += dst.count(uid, shard).await?;
        }
    }
    Ok(copied)
}

/// Through the gateway: pages of the shard's documents from the source, written to the
/// target. Documents changed meanwhile are set right by the replay; a page boundary that
/// shifted is caught by the count check before the owner changes.
pub(super) async fn copy_through_gateway(
    r: &Rebalancer,
    src: &NodeApi<'_>,
    dst: &NodeApi<'_>,
    indexes: &[(String, Option<String>)],
    shard: u32,
) -> Result<u64, String> {
    // Writes acknowledged before the recording began are not replayed: the pages must be
    // read after the source has applied them (an export waits behind them in its queue).
    src.drain(src.latest_task().await?, Duration::from_secs(3600))
        .await?;
    let filter = shard_tag::filter(&[shard]);
    let mut copied = 0u64;
    let mut last = None;
    for (uid, primary_key) in indexes {
        let mut offset = 0usize;
        loop {
            let body = json!({
                "filter": filter,
                "limit": r.settings.page_size,
                "offset": offset,
                "retrieveVectors": true,
            });
            let page = src
                .ok(
                    Method::POST,
                    &format!("/indexes/{uid}/documents/fetch"),
                    Some(&body),
                )
                .await?;
            let docs = page["results"].as_array().cloned().unwrap_or_default();
            if docs.is_empty() {
                break;
            }
            let n = docs.len();
            let mut path = format!("/indexes/{uid}/documents");
            if let Some(pk) = primary_key {
                path.push_str(&format!("?primaryKey={pk}"));
            }
            let answer = dst
                .ok(Method::POST, &path, Some(&Value::Array(docs)))
                .await?;
            last = Some(task_uid(&answer)?);
            offset += n;
            copied += n as u64;
            if offset as u64 >= page["total"].as_u64().unwrap_or(0) {
                break;
            }
        }
    }
    if let Some(uid) = last {
        dst.drain(uid, Duration::from_secs(3600)).await?;
    }
    Ok(copied)
}
