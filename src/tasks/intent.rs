//! Writes recorded before any node receives them. A write's intent (what it is and every
//! request of it, by node) is committed first; once the nodes have answered, one transaction
//! records its task, queues what a node missed and forgets the intent. An intent still there
//! when the gateway starts belongs to a write it was sending when it stopped: nobody knows
//! which nodes got it, so every request is queued again for its node (writes are
//! idempotent: the same documents, settings or deletions), under a task of its own, and the
//! fleet converges.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::handoff::{decode, encode, encode_for};
use super::{GatewayTask, StoreError, TaskService};
use crate::transport::NodeRequest;

/// What the task of a write says, known before any node answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteMeta {
    pub kind: String,
    pub index_uid: Option<String>,
    pub enqueued_at: String,
    pub custom_metadata: Option<String>,
    pub copies: u32,
    pub details: Option<Value>,
}

/// A write about to be sent: its task's description and its requests, by node id.
#[derive(Debug, Clone)]
pub struct Intent {
    pub meta: WriteMeta,
    pub sends: Vec<(String, NodeRequest)>,
}

impl Intent {
    /// Length-prefixed parts: the description (JSON), then each node id and request.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut part = |bytes: &[u8]| {
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(bytes);
        };
        part(&serde_json::to_vec(&self.meta).unwrap_or_default());
        for (node, req) in &self.sends {
            part(node.as_bytes());
            part(&encode(req));
        }
        out
    }

    pub fn decode(mut bytes: &[u8]) -> Option<Intent> {
        let mut next = || -> Option<&[u8]> {
            let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
            let part = bytes.get(8..8 + len)?;
            bytes = &bytes[8 + len..];
            Some(part)
        };
        let meta: WriteMeta = serde_json::from_slice(next()?).ok()?;
        let mut sends = Vec::new();
        while let Some(node) = next() {
            let node = String::from_utf8(node.to_vec()).ok()?;
            let req = decode(next()?)?;
            sends.push((node, req));
        }
        Some(Intent { meta, sends })
    }

    /// The task of this write: its description, the node tasks already created, and the
    /// nodes whose part waits in their queue.
    pub fn task(
        &self,
        uid: u64,
        node_tasks: Vec<super::NodeTaskRef>,
        awaiting: Vec<String>,
    ) -> GatewayTask {
        let m = &self.meta;
        GatewayTask {
            uid,
            index_uid: m.index_uid.clone(),
            kind: m.kind.clone(),
            enqueued_at: m.enqueued_at.clone(),
            custom_metadata: m.custom_metadata.clone(),
            copies: m.copies,
            node_tasks,
            details: m.details.clone(),
            error: None,
            canceled_by: None,
            view: None,
            awaiting,
        }
    }
}

impl TaskService {
    /// Records a write before it is sent; its intent id.
    /// `recorded`: the write's parts for moving shards, `(move id, request)`.
    pub fn begin_write(
        &self,
        intent: &Intent,
        recorded: &[(u64, &NodeRequest)],
    ) -> Result<u64, StoreError> {
        let recorded: Vec<(u64, Vec<u8>)> = recorded
            .iter()
            .map(|(m, req)| (*m, encode_for(req, None)))
            .collect();
        self.store()?.intent_begin(&intent.encode(), &recorded)
    }

    /// A write no node took: nothing to remember, nothing to replay for moving shards.
    pub fn abandon_write(&self, id: u64, moves: &[u64]) -> Result<(), StoreError> {
        let store = self.store()?;
        if !moves.is_empty() {
            store.move_log_abandon(id, moves)?;
        }
        store.settle(id, None, &[])
    }

    /// A write some node took: its task (from `build`) and the requests nodes missed, queued
    /// for them, in one transaction.
    pub fn settle_write(
        &self,
        id: u64,
        build: &dyn Fn(u64) -> GatewayTask,
        missed: &[(String, &NodeRequest)],
    ) -> Result<GatewayTask, StoreError> {
        let store = self.store()?;
        let task = build(store.reserve_uids(1)?);
        let hints: Vec<(String, Vec<u8>)> = missed
            .iter()
            .map(|(node, req)| (node.clone(), encode_for(req, Some(task.uid))))
            .collect();
        let mut lagging = self.lagging();
        store.settle(id, Some(&task), &hints)?;
        lagging.extend(missed.iter().map(|(node, _)| node.clone()));
        drop(lagging);
        self.track(&task);
        Ok(task)
    }

    /// With a shared store: completes the writes another gateway was sending when it
    /// stopped (an embedded store has them all recovered when it opens).
    pub fn recover_stopped_gateways_writes(&self) {
        if !self.store().is_ok_and(|s| s.shared()) {
            return;
        }
        match self.recover_writes() {
            Ok(0) => {}
            Ok(n) => {
                log::warn!("{n} write(s) left in flight by a stopped gateway are being completed")
            }
            Err(e) => log::error!("interrupted writes could not be recovered: {e}"),
        }
    }

    /// Queues again every write the gateway was sending when it stopped, each under a task
    /// of its own; how many.
    pub(super) fn recover_writes(&self) -> Result<usize, StoreError> {
        let store = self.store()?;
        let intents = store.intents()?;
        for (id, bytes) in &intents {
            let Some(intent) = Intent::decode(bytes) else {
                log::error!("an unreadable write record ({id}) is dropped");
                store.settle(*id, None, &[])?;
                continue;
            };
            let awaiting: Vec<String> = intent.sends.iter().map(|(n, _)| n.clone()).collect();
            let missed: Vec<(String, &NodeRequest)> =
                intent.sends.iter().map(|(n, r)| (n.clone(), r)).collect();
            let task = self.settle_write(
                *id,
                &|uid| intent.task(uid, Vec::new(), awaiting.clone()),
                &missed,
            )?;
            log::warn!(
                "the write of task {} was in flight when the gateway stopped: it is sent again to {} node request(s)",
                task.uid,
                missed.len()
            );
        }
        Ok(intents.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::Method;

    #[test]
    fn intents_round_trip() {
        let intent = Intent {
            meta: WriteMeta {
                kind: "documentAdditionOrUpdate".into(),
                index_uid: Some("m".into()),
                enqueued_at: "2026-01-01T00:00:00Z".into(),
                custom_metadata: None,
                copies: 1,
                details: Some(serde_json::json!({"receivedDocuments": 2})),
            },
            sends: vec![
                (
                    "a0".into(),
                    NodeRequest {
                        method: Method::POST,
                        path: "/indexes/m/documents?primaryKey=id".into(),
                        headers: Vec::new(),
                        body: Bytes::from_static(b"[{\"id\":1}]"),
                    },
                ),
                ("b0".into(), NodeRequest::get("/x")),
            ],
        };
        let back = Intent::decode(&intent.encode()).unwrap();
        assert_eq!(back.meta, intent.meta);
        assert_eq!(back.sends.len(), 2);
        assert_eq!(back.sends[0].0, "a0");
        assert_eq!(back.sends[0].1.body, intent.sends[0].1.body);
        assert_eq!(back.sends[1].1.path, "/x");
        assert!(Intent::decode(b"\x01").is_none());
    }
}
