//! The TOML file format, as written by operators; [`super::Config`] is what the gateway uses.
//!
//! Every table denies unknown keys so a typo is an error with its name and line, not a
//! silently ignored setting. Every field is optional here: defaults and cross-checks belong
//! to validation, and a `conf.d/` directory may spread one configuration over several files.

use serde::Deserialize;

use miroir_plugins::PluginConfig;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub server: Option<RawServer>,
    pub timeouts: Option<RawTimeouts>,
    pub hedging: Option<RawHedging>,
    pub limits: Option<RawLimits>,
    pub clients: Option<RawClients>,
    pub health: Option<RawHealth>,
    pub cluster: Option<RawCluster>,
    pub rebalance: Option<RawRebalance>,
    pub cache: Option<RawCache>,
    pub tasks: Option<RawTasks>,
    pub aliases: Option<RawAliases>,
    pub state: Option<RawState>,
    #[serde(default)]
    pub nodes: Vec<RawNode>,
    pub plugins: Option<Vec<PluginConfig>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub metrics_listen: Option<String>,
    pub data_dir: Option<String>,
    pub master_key_env: Option<String>,
    pub max_body_bytes: Option<u64>,
    pub threads: Option<u64>,
    pub work_stealing: Option<bool>,
    pub grace_period_seconds: Option<u64>,
    pub graceful_shutdown_timeout_seconds: Option<u64>,
    pub pid_file: Option<String>,
    pub upgrade_sock: Option<String>,
    pub log_level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub connect_ms: Option<u64>,
    pub read_ms: Option<u64>,
    pub write_ms: Option<u64>,
    pub idle_ms: Option<u64>,
    pub request_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHedging {
    pub enabled: Option<bool>,
    pub delay_ms: Option<u64>,
    pub min_delay_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub node_concurrency: Option<u64>,
    pub node_payload_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClients {
    pub header_timeout_ms: Option<u64>,
    pub body_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub max_connections: Option<u64>,
    pub reserved_connections: Option<u64>,
    pub max_headers: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub interval_ms: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub failures_before_down: Option<u64>,
    pub successes_before_up: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub shards: Option<u64>,
    pub replication_factor: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    pub id: String,
    pub url: String,
    pub group: Option<String>,
    pub weight: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRebalance {
    pub copy: Option<String>,
    pub barrier_timeout_ms: Option<u64>,
    pub page_size: Option<u64>,
    pub max_moves: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    pub enabled: Option<bool>,
    pub max_bytes: Option<u64>,
    pub ttl_ms: Option<u64>,
    pub indexes: Option<Vec<String>>,
    pub skip_indexes: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTasks {
    pub max_tasks: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAliases {
    pub history_retention: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    pub backend: Option<String>,
    pub redis: Option<RawStateRedis>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStateRedis {
    pub url: Option<String>,
    pub password_env: Option<String>,
    pub prefix: Option<String>,
    pub timeout_ms: Option<u64>,
}

/// Takes `b` into `a`: tables merge key by key, `[[nodes]]` append, a key set twice is an
/// error naming both files.
pub fn merge(a: &mut RawConfig, b: RawConfig, a_name: &str, b_name: &str) -> Result<(), String> {
    macro_rules! merge_table {
        ($table:ident, $name:literal, [$($field:ident),*]) => {
            if let Some(bt) = b.$table {
                let at = a.$table.get_or_insert_with(Default::default);
                $(
                    if let Some(v) = bt.$field {
                        if at.$field.is_some() {
                            return Err(format!(
                                "`{}.{}` is set in both {a_name} and {b_name}",
                                $name, stringify!($field)
                            ));
                        }
                        at.$field = Some(v);
                    }
                )*
            }
        };
    }
    merge_table!(
        server,
        "server",
        [
            listen,
            metrics_listen,
            data_dir,
            master_key_env,
            max_body_bytes,
            threads,
            work_stealing,
            grace_period_seconds,
            graceful_shutdown_timeout_seconds,
            pid_file,
            upgrade_sock,
            log_level
        ]
    );
    merge_table!(
        timeouts,
        "timeouts",
        [connect_ms, read_ms, write_ms, idle_ms, request_ms]
    );
    merge_table!(hedging, "hedging", [enabled, delay_ms, min_delay_ms]);
    merge_table!(limits, "limits", [node_concurrency, node_payload_bytes]);
    merge_table!(
        clients,
        "clients",
        [
            header_timeout_ms,
            body_timeout_ms,
            idle_timeout_ms,
            max_connections,
            reserved_connections,
            max_headers
        ]
    );
    merge_table!(
        health,
        "health",
        [
            interval_ms,
            timeout_ms,
            failures_before_down,
            successes_before_up
        ]
    );
    merge_table!(cluster, "cluster", [shards, replication_factor]);
    merge_table!(
        rebalance,
        "rebalance",
        [copy, barrier_timeout_ms, page_size, max_moves]
    );
    merge_table!(tasks, "tasks", [max_tasks]);
    merge_table!(aliases, "aliases", [history_retention]);
    merge_table!(state, "state", [backend, redis]);
    merge_table!(
        cache,
        "cache",
        [enabled, max_bytes, ttl_ms, indexes, skip_indexes]
    );
    a.nodes.extend(b.nodes);
    if let Some(p) = b.plugins {
        if a.plugins.is_some() {
            return Err(format!("`plugins` is set in both {a_name} and {b_name}"));
        }
        a.plugins = Some(p);
    }
    Ok(())
}
