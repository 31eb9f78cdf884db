//! What the gateway stores per task: its own uid and the node tasks it stands for.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A task's status, as Meilisearch names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    Enqueued,
    Processing,
    Succeeded,
    Failed,
    Canceled,
}

impl Status {
    pub fn is_final(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Canceled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Enqueued => "enqueued",
            Status::Processing => "processing",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "enqueued" => Status::Enqueued,
            "processing" => Status::Processing,
            "succeeded" => Status::Succeeded,
            "failed" => Status::Failed,
            "canceled" => Status::Canceled,
            _ => return None,
        })
    }
}

/// One task a node created for a gateway task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeTaskRef {
    /// The node's id in the topology.
    pub node: String,
    pub uid: u64,
    /// A task the gateway added for its own needs (e.g. keeping the shard tag filterable):
    /// it counts for the status, not for the details.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
}

/// A task as the gateway knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayTask {
    pub uid: u64,
    pub index_uid: Option<String>,
    /// Meilisearch's task type, e.g. `documentAdditionOrUpdate`.
    pub kind: String,
    /// RFC 3339, when the gateway accepted the request.
    pub enqueued_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_metadata: Option<String>,
    /// How many nodes hold each document (groups x replication factor): document counts
    /// summed over nodes are divided by it.
    pub copies: u32,
    pub node_tasks: Vec<NodeTaskRef>,
    /// Details the gateway knows better than the nodes (e.g. `receivedDocuments` of the
    /// client's batch); they replace the nodes' values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// A failure decided by the gateway itself (a document a node would refuse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// The uid of the gateway task that canceled this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canceled_by: Option<u64>,
    /// The last view computed; final once the task is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<Value>,
    /// Nodes whose part waits in their queue of missed writes: the task finishes once they
    /// have it (one entry per queued request).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub awaiting: Vec<String>,
}

impl GatewayTask {
    /// The status of the last known view (`enqueued` before any).
    pub fn status(&self) -> Status {
        self.view
            .as_ref()
            .and_then(|v| v.get("status"))
            .and_then(Value::as_str)
            .and_then(Status::parse)
            .unwrap_or(Status::Enqueued)
    }

    /// Whether the view can no longer change.
    pub fn is_final(&self) -> bool {
        self.view.is_some() && self.status().is_final()
    }

    /// A task about tasks (a cancelation or deletion) of no single index: its `details`, and
    /// the node tasks it made.
    pub fn about_tasks(
        uid: u64,
        kind: &str,
        enqueued_at: String,
        node_tasks: Vec<NodeTaskRef>,
        details: Value,
    ) -> GatewayTask {
        GatewayTask {
            uid,
            index_uid: None,
            kind: kind.to_string(),
            enqueued_at,
            custom_metadata: None,
            copies: 1,
            node_tasks,
            details: Some(details),
            error: None,
            canceled_by: None,
            view: None,
            awaiting: Vec::new(),
        }
    }

    /// The summarized view a write answers with (`202`).
    pub fn summary(&self) -> Value {
        let mut out = serde_json::Map::new();
        out.insert("taskUid".into(), self.uid.into());
        out.insert("indexUid".into(), self.index_uid.clone().into());
        out.insert("status".into(), "enqueued".into());
        out.insert("type".into(), self.kind.clone().into());
        out.insert("enqueuedAt".into(), self.enqueued_at.clone().into());
        if let Some(m) = &self.custom_metadata {
            out.insert("customMetadata".into(), m.clone().into());
        }
        Value::Object(out)
    }
}
