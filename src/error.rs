//! Meilisearch-shaped errors (`message`, `code`, `type`, `link`) for answers the gateway writes.

use serde::Serialize;

/// Meilisearch's error `type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    InvalidRequest,
    Internal,
    Auth,
    System,
}

/// An error answer, serialized exactly as a Meilisearch node serializes its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeiliError {
    pub status: u16,
    pub code: &'static str,
    pub kind: ErrorType,
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
    code: &'a str,
    #[serde(rename = "type")]
    kind: ErrorType,
    link: String,
}

impl MeiliError {
    pub fn new(
        status: u16,
        code: &'static str,
        kind: ErrorType,
        message: impl Into<String>,
    ) -> Self {
        MeiliError {
            status,
            code,
            kind,
            message: message.into(),
        }
    }

    /// The JSON body, field order as Meilisearch writes it.
    pub fn to_json(&self) -> Vec<u8> {
        let body = Body {
            message: &self.message,
            code: self.code,
            kind: self.kind,
            link: format!("https://docs.meilisearch.com/errors#{}", self.code),
        };
        // Serializing a struct of strings cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// A route this gateway version does not serve yet.
    pub fn not_implemented(method: &str, path: &str) -> Self {
        MeiliError::new(
            501,
            "miroir_not_implemented",
            ErrorType::System,
            format!("Miroir does not serve `{method} {path}` yet."),
        )
    }

    /// A node's own feature, meaningless through a gateway, and why.
    pub fn node_local(feature: &str, why: &str) -> Self {
        MeiliError::new(
            501,
            "miroir_node_local_feature",
            ErrorType::InvalidRequest,
            format!("`{feature}` is not available through Miroir: {why}."),
        )
    }

    /// Meilisearch's answer to a body over the size limit.
    pub fn payload_too_large(limit: usize) -> Self {
        MeiliError::new(
            413,
            "payload_too_large",
            ErrorType::InvalidRequest,
            format!(
                "The provided payload reached the size limit. The maximum accepted payload size is {}.",
                human_bytes(limit)
            ),
        )
    }

    /// No node can take a request that any single node could answer; `detail` says why.
    pub fn no_node_available(detail: &str) -> Self {
        MeiliError::new(
            503,
            "miroir_no_node_available",
            ErrorType::System,
            format!("No Meilisearch node could be reached: {detail}."),
        )
    }

    /// A read found no replica for some shards; `reasons` are what each attempt met.
    pub fn shards_unavailable(shards: &[u32], reasons: &[String]) -> Self {
        let list: Vec<String> = shards.iter().map(u32::to_string).collect();
        MeiliError::new(
            503,
            "miroir_shards_unavailable",
            ErrorType::System,
            format!(
                "No replica of shards {} answered ({}); retry once a replica is back.",
                list.join(", "),
                if reasons.is_empty() {
                    "every owner fails its health checks".to_string()
                } else {
                    reasons.join("; ")
                }
            ),
        )
    }

    /// `GET /health` while `lost` of `shards` shards have no reachable owner.
    pub fn fleet_unavailable(lost: usize, shards: u32, down: &[String]) -> Self {
        MeiliError::new(
            503,
            "miroir_shards_unavailable",
            ErrorType::System,
            format!(
                "{lost} of {shards} shards have no reachable node. Unreachable nodes: {}.",
                down.join(", ")
            ),
        )
    }

    /// A write that reached too few owners to be acknowledged; `failed` names the nodes.
    pub fn write_quorum_failed(failed: &[String]) -> Self {
        MeiliError::new(
            503,
            "miroir_write_quorum_failed",
            ErrorType::System,
            format!(
                "The write could not reach enough nodes to be acknowledged; unreachable or failing: {}. Retry once they are back.",
                failed.join(", ")
            ),
        )
    }

    /// A write that cannot be replayed twice safely while shards move (see
    /// `crate::rebalance`).
    pub fn shards_moving(what: &str) -> Self {
        MeiliError::new(
            503,
            "miroir_shards_moving",
            ErrorType::System,
            format!(
                "{what} cannot run while shards move between nodes: it could not be replayed on their new owner without applying it twice. Retry once the rebalance is done (`GET /_miroir/rebalance`)."
            ),
        )
    }

    /// The task store is still held by the previous process of a graceful upgrade.
    pub fn task_store_busy() -> Self {
        MeiliError::new(
            503,
            "miroir_task_store_busy",
            ErrorType::System,
            "The gateway is finishing an upgrade; retry in a moment.",
        )
    }

    /// The shared state store (Redis) is down or too slow: nothing was changed.
    pub fn state_unavailable() -> Self {
        MeiliError::new(
            503,
            "miroir_state_unavailable",
            ErrorType::System,
            "The gateway cannot reach its shared state store, so it cannot record this write; nothing was changed. Retry in a moment.",
        )
    }

    /// The proxy path failed with an HTTP status of its own.
    pub fn proxy_error(status: u16, detail: String) -> Self {
        MeiliError::new(status, "miroir_proxy_error", ErrorType::System, detail)
    }

    /// A node failed while a request was being forwarded to it.
    pub fn node_failed(node: &str, detail: &str) -> Self {
        MeiliError::new(
            502,
            "miroir_node_error",
            ErrorType::System,
            format!("Node `{node}` failed to answer: {detail}."),
        )
    }

    /// Something in the gateway itself went wrong.
    pub fn internal(message: impl Into<String>) -> Self {
        MeiliError::new(500, "internal", ErrorType::Internal, message)
    }
}

/// Formats a byte count as Meilisearch's payload-size message does (`byte-unit`'s
/// appropriate unit: binary units for multiples of 1024, decimal ones otherwise).
pub fn human_bytes(n: usize) -> String {
    let (base, units): (f64, [&str; 6]) = if n % 1024 == 0 && n > 0 {
        (1024.0, ["B", "KiB", "MiB", "GiB", "TiB", "PiB"])
    } else {
        (1000.0, ["B", "KB", "MB", "GB", "TB", "PB"])
    };
    let mut value = n as f64;
    let mut unit = 0;
    while value >= base && unit + 1 < units.len() {
        value /= base;
        unit += 1;
    }
    format!("{value} {}", units[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_with_meilisearch_field_order() {
        let e = MeiliError::new(
            404,
            "index_not_found",
            ErrorType::InvalidRequest,
            "Index `x` not found.",
        );
        assert_eq!(
            String::from_utf8(e.to_json()).unwrap(),
            r#"{"message":"Index `x` not found.","code":"index_not_found","type":"invalid_request","link":"https://docs.meilisearch.com/errors#index_not_found"}"#
        );
    }

    #[test]
    fn formats_sizes_like_meilisearch() {
        // The cases Meilisearch's own tests and byte-unit 5.2 give.
        assert_eq!(human_bytes(100_000_000), "100 MB");
        assert_eq!(human_bytes(10_485_760), "10 MiB");
        assert_eq!(human_bytes(3), "3 B");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
        assert_eq!(human_bytes(262_144), "256 KiB");
        assert_eq!(human_bytes(123_456_789), "123.456789 MB");
        assert_eq!(human_bytes(10_000), "10 KB");
    }
}
