//! One fan-out read: one owner per shard answers, exactly once (the engine is
//! [`crate::attempts`]); a node's client error is the read's answer, and shards no replica
//! answered make it `503 miroir_shards_unavailable`.

use bytes::Bytes;
use http::{HeaderValue, Method};

use super::{relay, Request};
use crate::attempts::{self, ReadError, Spread, Target, Verdict};
use crate::cluster::Cluster;
use crate::error::MeiliError;
use crate::respond::Reply;
use crate::transport::NodeResponse;

/// Attempts at a shard after the first, on other replicas, before the read fails.
pub(super) const MAX_FAILOVERS: usize = 2;

/// Sends one JSON request per chosen owner and returns the answers, which cover every shard
/// exactly once, or the reply to give instead (a node's client error verbatim, or `503
/// miroir_shards_unavailable`).
pub(super) async fn gather(
    cluster: &Cluster<'_>,
    req: &Request<'_>,
    path: &str,
    body_for: &(dyn Fn(&Target) -> Vec<u8> + Sync),
) -> Result<Vec<NodeResponse>, Reply> {
    let ct = HeaderValue::from_static("application/json");
    let request = |target: &Target| {
        let body = Bytes::from(body_for(target));
        req.to_node(Method::POST, path.to_string(), Some(&ct), body)
    };
    let spread = Spread {
        units: cluster.topology.shards,
        by_shard: true,
        max_failovers: MAX_FAILOVERS,
        request: &request,
        judge,
    };
    match attempts::run(cluster, &spread).await {
        Ok(mut answers) => {
            // Answers arrive as nodes finish; merges keep their order among equals (browse
            // pages without `sort`, tied scores), so it must not change from one call to
            // the next.
            answers.sort_by_key(|(node, _)| *node);
            Ok(answers.into_iter().map(|(_, resp)| resp).collect())
        }
        Err(ReadError::Stopped(_, resp)) => Err(relay(&resp)),
        Err(ReadError::Unavailable { units, reasons, .. }) => Err(Reply::error(
            &MeiliError::shards_unavailable(&units, &reasons),
        )),
    }
}

/// A search answer is taken; a client error is everyone's answer; a node error, a timeout
/// or `503 too_many_search_requests` send the shards elsewhere.
pub(super) fn judge(status: u16) -> Verdict {
    match status {
        200 => Verdict::Take,
        s if s < 500 => Verdict::Stop,
        _ => Verdict::Retry,
    }
}
