//! Gateway configuration: read the TOML file (or a `conf.d/` directory), check it whole, and
//! produce the typed [`Config`] the rest of the gateway uses.

mod nodes;
mod raw;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use miroir_plugins::PluginConfig;

pub use nodes::node_address;
#[cfg(test)]
use nodes::parse_node_url;
use nodes::validate_nodes;
use raw::RawConfig;

/// The environment variable holding the master key, unless `server.master_key_env` says otherwise.
pub const DEFAULT_MASTER_KEY_ENV: &str = "MIROIR_MASTER_KEY";

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerSettings,
    pub timeouts: Timeouts,
    pub hedging: Hedging,
    pub limits: Limits,
    pub clients: ClientLimits,
    pub health: HealthSettings,
    pub cluster: ClusterSpec,
    pub rebalance: RebalanceSettings,
    pub cache: CacheSettings,
    pub tasks: TaskSettings,
    /// Flips kept in each alias's history.
    pub alias_history: usize,
    pub state: StateBackend,
    pub nodes: Vec<NodeSpec>,
    pub plugins: Vec<PluginConfig>,
}

/// The gateway's task history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskSettings {
    /// Tasks kept at most: past it, the oldest finished ones are deleted, here and on the
    /// nodes, as Meilisearch prunes its own queue.
    pub max_tasks: u64,
}

/// Where the gateway keeps what it persists (see [`crate::state`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateBackend {
    /// The redb file in `server.data_dir`.
    Embedded,
    /// Redis, shared by every gateway pointed at it.
    Redis(crate::state::redis::RedisSettings),
}

/// The environment variable holding the Redis password, unless `state.redis.password_env`
/// says otherwise.
pub const DEFAULT_REDIS_PASSWORD_ENV: &str = "MIROIR_REDIS_PASSWORD";

/// How shards move between nodes when the fleet changes (see [`crate::rebalance`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebalanceSettings {
    /// Node to node with `POST /export` when the nodes allow it, else through the gateway.
    pub copy: CopyMode,
    /// The longest the gateway holds writes while a moving shard changes owner; past it the
    /// move goes back to replaying and tries again.
    pub barrier_timeout: Duration,
    /// Documents per page of a copy through the gateway.
    pub page_size: usize,
    /// Moves running at once at most (never two on one node).
    pub max_moves: usize,
}

/// The exact search cache (see [`crate::cache`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    pub enabled: bool,
    /// Memory budget: request and answer bytes of every entry.
    pub max_bytes: u64,
    /// The longest an answer is served, for writes the gateway does not see.
    pub ttl: Duration,
    /// Index patterns cached (`*`, `movies`, `movies*`).
    pub indexes: Vec<String>,
    /// Index patterns never cached, whatever `indexes` says.
    pub skip_indexes: Vec<String>,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            enabled: false,
            max_bytes: 64 << 20,
            ttl: Duration::from_secs(60),
            indexes: vec!["*".into()],
            skip_indexes: Vec::new(),
        }
    }
}

impl CacheSettings {
    /// Whether answers reading `index` are cached.
    pub fn covers(&self, index: &str) -> bool {
        let matches = |p: &String| match p.strip_suffix('*') {
            Some(prefix) => index.starts_with(prefix),
            None => p == index,
        };
        self.indexes.iter().any(matches) && !self.skip_indexes.iter().any(matches)
    }
}

/// How a shard's documents reach their new owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMode {
    /// `POST /export` from the source node; through the gateway if the node refuses.
    Auto,
    /// Always through the gateway (nodes that cannot reach each other).
    Gateway,
}

/// Process-level settings; they take effect at start (a reload logs a change, then ignores it).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub data_dir: PathBuf,
    pub master_key_env: String,
    /// The key the gateway uses for its own calls to nodes; never logged.
    pub master_key: Option<String>,
    pub max_body_bytes: usize,
    pub threads: usize,
    /// Whether the proxy's threads take each other's work (one runtime), or each keeps its
    /// connections and their node requests (one runtime per thread: fewer wake-ups).
    pub work_stealing: bool,
    pub grace_period_seconds: u64,
    pub graceful_shutdown_timeout_seconds: u64,
    pub pid_file: String,
    pub upgrade_sock: String,
    pub log_level: String,
}

/// Timeouts of every call from the gateway to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub read: Duration,
    pub write: Duration,
    pub idle: Duration,
    /// The deadline of a client read that fans out: failovers and hedges happen within it.
    pub request: Duration,
}

/// Asking a second replica when the first is slow to answer a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hedging {
    pub enabled: bool,
    /// A fixed delay; `None`: the node's recent p95 response time, at least `min_delay`.
    pub delay: Option<Duration>,
    pub min_delay: Duration,
}

/// Bounds on client connections, so slow or idle clients cannot exhaust the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// A connection's first request head must arrive within it, or `408` (as a node does).
    pub header_timeout: Duration,
    /// Each read of a request body must complete within it.
    pub body_timeout: Duration,
    /// A keep-alive connection waiting for its next request is closed after it.
    pub idle_timeout: Duration,
    /// Client connections open at once, at most; more are refused.
    pub max_connections: usize,
    /// Connections beyond `max_connections` kept for `GET /health`, so a load balancer can
    /// still tell the gateway is alive when it is full.
    pub reserved_connections: usize,
    /// Request headers at most (a node answers `431` beyond 96).
    pub max_headers: usize,
}

/// Bounds on the gateway's own traffic to nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests in flight to one node at most; more wait for a free slot.
    pub node_concurrency: usize,
    /// The largest payload a node takes (Meilisearch's `--http-payload-size-limit`); a
    /// node's part of a batch that would be larger is sent as several.
    pub node_payload_bytes: usize,
}

/// Background health checks of nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    pub interval: Duration,
    pub timeout: Duration,
    pub failures_before_down: usize,
    pub successes_before_up: usize,
}

/// How documents are spread: `shards` slots, each owned by `replication_factor` nodes of
/// every replica group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterSpec {
    pub shards: u32,
    pub replication_factor: usize,
}

/// One Meilisearch node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub id: String,
    /// The URL as written, normalized without a trailing slash.
    pub url: String,
    /// `host:port` for the `Host` header of requests to the node.
    pub authority: String,
    pub addr: SocketAddr,
    pub group: String,
    /// The node's share of shards relative to the others of its group (default 1).
    pub weight: u32,
}

/// Every problem found in a configuration, one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Reads and validates `path`: a TOML file, or a directory whose `*.toml` files are read
    /// in name order and merged. The master key is read from the environment.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Self::load_with_env(path, |name| std::env::var(name).ok())
    }

    /// [`Config::load`] with an explicit environment, for tests.
    pub fn load_with_env(
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        let raw = read_raw(path)?;
        validate(raw, env)
    }

    /// Parses one TOML document (used by tests and `check-config` on stdin).
    pub fn from_toml_str(
        text: &str,
        name: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        let raw = parse_raw(text, name).map_err(|e| ConfigErrors(vec![e]))?;
        validate(raw, env)
    }
}

fn parse_raw(text: &str, name: &str) -> Result<RawConfig, String> {
    toml::from_str(text).map_err(|e| format!("{name}: {}", e.to_string().trim_end()))
}

fn read_raw(path: &Path) -> Result<RawConfig, ConfigErrors> {
    let fail = |msg: String| ConfigErrors(vec![msg]);
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    let files: Vec<PathBuf> = if meta.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| fail(format!("{}: {e}", path.display())))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "toml"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(fail(format!(
                "{}: no *.toml file in this directory",
                path.display()
            )));
        }
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut merged = RawConfig::default();
    let mut merged_names = String::new();
    let mut errors = Vec::new();
    for file in &files {
        let name = file.display().to_string();
        let parsed = std::fs::read_to_string(file)
            .map_err(|e| format!("{name}: {e}"))
            .and_then(|text| parse_raw(&text, &name));
        match parsed {
            Ok(raw) => {
                if let Err(e) = raw::merge(&mut merged, raw, &merged_names, &name) {
                    errors.push(e);
                }
                merged_names = name;
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(merged)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn validate(raw: RawConfig, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let server_raw = raw.server.unwrap_or_default();
    let addr = |errors: &mut Vec<String>, key: &str, value: Option<String>, default: &str| {
        let text = value.unwrap_or_else(|| default.to_string());
        text.parse::<SocketAddr>().unwrap_or_else(|_| {
            errors.push(format!(
                "`server.{key}`: `{text}` is not an `ip:port` address"
            ));
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    };
    let listen = addr(&mut errors, "listen", server_raw.listen, "127.0.0.1:7700");
    let metrics_listen = addr(
        &mut errors,
        "metrics_listen",
        server_raw.metrics_listen,
        "127.0.0.1:7710",
    );
    if listen == metrics_listen {
        errors.push("`server.listen` and `server.metrics_listen` must differ".into());
    }
    let master_key_env = server_raw
        .master_key_env
        .unwrap_or_else(|| DEFAULT_MASTER_KEY_ENV.to_string());
    let master_key = env(&master_key_env).filter(|k| !k.is_empty());
    let positive = |errors: &mut Vec<String>, key: &str, v: Option<u64>, default: u64| -> u64 {
        let v = v.unwrap_or(default);
        if v == 0 {
            errors.push(format!("`{key}` must be greater than 0"));
        }
        v
    };
    let max_body_bytes = positive(
        &mut errors,
        "server.max_body_bytes",
        server_raw.max_body_bytes,
        100_000_000,
    ) as usize;
    let default_threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let threads = positive(
        &mut errors,
        "server.threads",
        server_raw.threads,
        default_threads,
    ) as usize;
    let log_level = server_raw.log_level.unwrap_or_else(|| "info".into());
    if !["error", "warn", "info", "debug", "trace", "off"].contains(&log_level.as_str()) {
        errors.push(format!(
            "`server.log_level`: `{log_level}` is not one of error, warn, info, debug, trace, off"
        ));
    }
    let server = ServerSettings {
        listen,
        metrics_listen,
        data_dir: PathBuf::from(
            server_raw
                .data_dir
                .unwrap_or_else(|| "/var/lib/miroir".into()),
        ),
        master_key_env,
        master_key,
        max_body_bytes,
        threads,
        work_stealing: server_raw.work_stealing.unwrap_or(false),
        grace_period_seconds: server_raw.grace_period_seconds.unwrap_or(5),
        graceful_shutdown_timeout_seconds: server_raw
            .graceful_shutdown_timeout_seconds
            .unwrap_or(10),
        pid_file: server_raw
            .pid_file
            .unwrap_or_else(|| "/tmp/miroir.pid".into()),
        upgrade_sock: server_raw
            .upgrade_sock
            .unwrap_or_else(|| "/tmp/miroir_upgrade.sock".into()),
        log_level,
    };

    let t = raw.timeouts.unwrap_or_default();
    let ms = |errors: &mut Vec<String>, key: &str, v: Option<u64>, default: u64| {
        Duration::from_millis(positive(errors, key, v, default))
    };
    let timeouts = Timeouts {
        connect: ms(&mut errors, "timeouts.connect_ms", t.connect_ms, 1_000),
        read: ms(&mut errors, "timeouts.read_ms", t.read_ms, 30_000),
        write: ms(&mut errors, "timeouts.write_ms", t.write_ms, 30_000),
        idle: ms(&mut errors, "timeouts.idle_ms", t.idle_ms, 60_000),
        request: ms(&mut errors, "timeouts.request_ms", t.request_ms, 30_000),
    };
    let hd = raw.hedging.unwrap_or_default();
    let hedging = Hedging {
        enabled: hd.enabled.unwrap_or(true),
        delay: hd
            .delay_ms
            .map(|v| ms(&mut errors, "hedging.delay_ms", Some(v), 0)),
        min_delay: Duration::from_millis(hd.min_delay_ms.unwrap_or(20)),
    };
    let raw_limits = raw.limits.unwrap_or_default();
    let limits = Limits {
        node_concurrency: positive(
            &mut errors,
            "limits.node_concurrency",
            raw_limits.node_concurrency,
            256,
        ) as usize,
        node_payload_bytes: positive(
            &mut errors,
            "limits.node_payload_bytes",
            raw_limits.node_payload_bytes,
            100_000_000,
        ) as usize,
    };
    let cl = raw.clients.unwrap_or_default();
    let clients = ClientLimits {
        header_timeout: ms(
            &mut errors,
            "clients.header_timeout_ms",
            cl.header_timeout_ms,
            5_000,
        ),
        body_timeout: ms(
            &mut errors,
            "clients.body_timeout_ms",
            cl.body_timeout_ms,
            30_000,
        ),
        idle_timeout: ms(
            &mut errors,
            "clients.idle_timeout_ms",
            cl.idle_timeout_ms,
            75_000,
        ),
        max_connections: positive(
            &mut errors,
            "clients.max_connections",
            cl.max_connections,
            10_000,
        ) as usize,
        reserved_connections: cl.reserved_connections.unwrap_or(256) as usize,
        max_headers: positive(&mut errors, "clients.max_headers", cl.max_headers, 96) as usize,
    };
    if clients.max_headers > 256 {
        errors.push("`clients.max_headers` must be at most 256".into());
    }
    let h = raw.health.unwrap_or_default();
    let health = HealthSettings {
        interval: ms(&mut errors, "health.interval_ms", h.interval_ms, 1_000),
        timeout: ms(&mut errors, "health.timeout_ms", h.timeout_ms, 1_000),
        failures_before_down: positive(
            &mut errors,
            "health.failures_before_down",
            h.failures_before_down,
            2,
        ) as usize,
        successes_before_up: positive(
            &mut errors,
            "health.successes_before_up",
            h.successes_before_up,
            1,
        ) as usize,
    };

    let c = raw.cluster.unwrap_or_default();
    let shards = c.shards.unwrap_or(64);
    if !(1..=65_536).contains(&shards) {
        errors.push(format!(
            "`cluster.shards` must be between 1 and 65536, not {shards}"
        ));
    }
    let replication_factor = positive(
        &mut errors,
        "cluster.replication_factor",
        c.replication_factor,
        1,
    ) as usize;
    let cluster = ClusterSpec {
        shards: shards.clamp(1, 65_536) as u32,
        replication_factor,
    };

    let nodes = validate_nodes(&raw.nodes, &mut errors);
    let mut groups: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &nodes {
        *groups.entry(n.group.as_str()).or_default() += 1;
    }
    for (group, size) in &groups {
        if replication_factor > *size {
            errors.push(format!(
                "`cluster.replication_factor` is {replication_factor} but group `{group}` has only {size} node(s)"
            ));
        }
    }

    let rb = raw.rebalance.unwrap_or_default();
    let rebalance = RebalanceSettings {
        copy: match rb.copy.as_deref() {
            None | Some("auto") => CopyMode::Auto,
            Some("gateway") => CopyMode::Gateway,
            Some(other) => {
                errors.push(format!(
                    "`rebalance.copy` is `{other}`; expected `auto` or `gateway`"
                ));
                CopyMode::Auto
            }
        },
        barrier_timeout: ms(
            &mut errors,
            "rebalance.barrier_timeout_ms",
            rb.barrier_timeout_ms,
            5_000,
        ),
        page_size: positive(&mut errors, "rebalance.page_size", rb.page_size, 1_000) as usize,
        max_moves: positive(&mut errors, "rebalance.max_moves", rb.max_moves, 4) as usize,
    };

    let cr = raw.cache.unwrap_or_default();
    let default_cache = CacheSettings::default();
    let cache = CacheSettings {
        enabled: cr.enabled.unwrap_or(default_cache.enabled),
        max_bytes: positive(&mut errors, "cache.max_bytes", cr.max_bytes, 64 << 20),
        ttl: ms(&mut errors, "cache.ttl_ms", cr.ttl_ms, 60_000),
        indexes: cr.indexes.unwrap_or(default_cache.indexes),
        skip_indexes: cr.skip_indexes.unwrap_or_default(),
    };
    check_cache_patterns(&cache, &mut errors);

    let tasks = TaskSettings {
        max_tasks: positive(
            &mut errors,
            "tasks.max_tasks",
            raw.tasks.and_then(|t| t.max_tasks),
            1_000_000,
        ),
    };

    let alias_history = raw
        .aliases
        .and_then(|a| a.history_retention)
        .unwrap_or(10)
        .min(10_000) as usize;

    let raw_state = raw.state.unwrap_or_default();
    let state = match raw_state.backend.as_deref() {
        None | Some("embedded") => {
            if raw_state.redis.is_some() {
                errors.push("`[state.redis]` is set but `state.backend` is not `redis`".into());
            }
            StateBackend::Embedded
        }
        Some("redis") => {
            let r = raw_state.redis.unwrap_or_default();
            let url = r.url.unwrap_or_else(|| "redis://127.0.0.1:6379".into());
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                errors.push(format!(
                    "`state.redis.url` is `{url}`; expected `redis://host:port[/db]` or, with TLS, `rediss://host:port[/db]`"
                ));
            }
            let password_env = r
                .password_env
                .unwrap_or_else(|| DEFAULT_REDIS_PASSWORD_ENV.to_string());
            StateBackend::Redis(crate::state::redis::RedisSettings {
                url,
                password: env(&password_env).filter(|p| !p.is_empty()),
                prefix: r.prefix.unwrap_or_else(|| "miroir:".into()),
                timeout: ms(&mut errors, "state.redis.timeout_ms", r.timeout_ms, 1_000),
            })
        }
        Some(other) => {
            errors.push(format!(
                "`state.backend` is `{other}`; expected `embedded` or `redis`"
            ));
            StateBackend::Embedded
        }
    };

    let plugins = raw.plugins.unwrap_or_else(PluginConfig::defaults);
    for (i, p) in plugins.iter().enumerate() {
        if let Err(e) = p.build() {
            errors.push(format!("`plugins[{i}]`: {e}"));
        }
    }

    if errors.is_empty() {
        Ok(Config {
            server,
            timeouts,
            hedging,
            limits,
            clients,
            health,
            cluster,
            rebalance,
            cache,
            tasks,
            alias_history,
            state,
            nodes,
            plugins,
        })
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Index patterns are uids with at most a trailing `*`, as in API keys.
fn check_cache_patterns(settings: &CacheSettings, errors: &mut Vec<String>) {
    for p in settings.indexes.iter().chain(&settings.skip_indexes) {
        let body = p.strip_suffix('*').unwrap_or(p);
        if (body.is_empty() && p != "*") || body.contains('*') {
            errors.push(format!(
                "`cache` index pattern `{p}`: expected an index uid, optionally ending with `*`"
            ));
        }
    }
}

#[cfg(test)]
mod tests;
