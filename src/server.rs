//! Assembles the Pingora server from a validated [`Config`]: the proxy listener, the metrics
//! listener, health checks and topology reload.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use pingora::apps::http_app::{HttpServer, ServeHttp};
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::protocols::http::ServerSession;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::server::ShutdownWatch;
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;

use crate::aliases::AliasService;
use crate::auth::AuthChecker;
use crate::cache::SearchCache;
use crate::cluster::ReadPolicy;
use crate::config::Config;
use crate::config::StateBackend;
use crate::edge::{Edge, MemoryTrim};
use crate::fleet::Fleet;
use crate::health::{HealthService, NodeHealth};
use crate::keys::{self, KeySync};
use crate::metrics::Metrics;
use crate::node_client::NodeClient;
use crate::ops::{IndexCache, Services};
use crate::placement::Placement;
use crate::proxy::Gateway;
use crate::rebalance::{self, state::State, Rebalancer};
use crate::reload::{ReloadService, Reloader};
use crate::state::redis::RedisStore;
use crate::state::StateStore;
use crate::tasks::{refresh, Finished, TaskService};
use crate::topology::TopologyStore;
use crate::webhooks::Webhooks;

/// Bytes buffered per client connection for reads (Pingora's default is 64 KiB).
const CLIENT_READ_BUFFER: usize = 4096;

/// Pingora's server settings, from its YAML file (`-c`) if given, then Miroir's `[server]`.
fn server_conf(config: &Config, opt: &Opt) -> Result<ServerConf, String> {
    let mut conf = match &opt.conf {
        Some(path) => ServerConf::load_from_yaml(path).map_err(|e| e.to_string())?,
        None => ServerConf::default(),
    };
    let s = &config.server;
    conf.threads = s.threads;
    conf.work_stealing = s.work_stealing;
    conf.grace_period_seconds = Some(s.grace_period_seconds);
    conf.graceful_shutdown_timeout_seconds = Some(s.graceful_shutdown_timeout_seconds);
    conf.pid_file = s.pid_file.clone();
    conf.upgrade_sock = s.upgrade_sock.clone();
    conf.daemon = conf.daemon || opt.daemon;
    Ok(conf)
}

/// Records the shard count next to the data, and refuses to start with a different one:
/// documents were placed with the old count.
fn check_data_dir(data_dir: &Path, shards: u32) -> Result<(), String> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", data_dir.display()))?;
    let marker = data_dir.join("shards");
    match std::fs::read_to_string(&marker) {
        Ok(text) => {
            let recorded: u32 = text
                .trim()
                .parse()
                .map_err(|_| format!("{}: not a shard count", marker.display()))?;
            if recorded != shards {
                return Err(format!(
                    "`cluster.shards` is {shards} but the cluster in {} was built with {recorded} shards; resharding is not supported",
                    data_dir.display()
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(&marker, format!("{shards}\n"))
                .map_err(|e| format!("cannot write {}: {e}", marker.display()))
        }
        Err(e) => Err(format!("{}: {e}", marker.display())),
    }
}

/// Builds every service and runs until shutdown.
/// The task service on the configured state backend.
fn open_tasks(
    config: &Config,
    metrics: &crate::metrics::Metrics,
) -> Result<TaskService, crate::tasks::StoreError> {
    match &config.state {
        StateBackend::Embedded => TaskService::open(&config.server.data_dir),
        StateBackend::Redis(settings) => {
            log::info!(
                "state in Redis at {} (keys {}*)",
                settings.url,
                settings.prefix
            );
            let settings = settings.clone();
            let counted = crate::state::StateMetrics::new(metrics);
            TaskService::open_with(Box::new(move || {
                RedisStore::open(&settings)
                    .map(|s| Arc::new(s.with_metrics(counted.clone())) as Arc<dyn StateStore>)
            }))
        }
    }
}

pub fn run(config_path: PathBuf, config: Config, opt: Opt) -> Result<(), String> {
    let conf = server_conf(&config, &opt)?;
    if !opt.test {
        check_data_dir(&config.server.data_dir, config.cluster.shards)?;
    }
    let opt_test = opt.test;
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let metrics = Arc::new(Metrics::new());
    // The effective placement: which nodes hold which shards (see `rebalance`).
    let state = if opt_test {
        State::new(Placement::rendezvous(&config.cluster, &config.nodes))
    } else {
        rebalance::load_state(&config)?
    };
    let store = Arc::new(TopologyStore::new(Rebalancer::topology(
        &state,
        &config.nodes,
        1,
    )));
    metrics.topology_generation.set(1);
    let health = Arc::new(NodeHealth::new(
        store.clone(),
        config.health,
        metrics.clone(),
    ));
    let client = Arc::new(NodeClient::new(config.timeouts, config.limits));
    let plugins = config
        .plugins
        .iter()
        .map(|p| p.build())
        .collect::<Result<Vec<_>, _>>()?;
    if config.server.master_key.is_none() {
        log::warn!(
            "${} is not set: the gateway calls nodes without a key (fine only if they run without one)",
            config.server.master_key_env
        );
    }

    let master = config
        .server
        .master_key
        .as_ref()
        .and_then(|k| http::HeaderValue::from_str(&format!("Bearer {k}")).ok());
    let fleet = Arc::new(Fleet {
        topology: store.clone(),
        health: health.clone(),
        transport: client.clone(),
        master,
        metrics: metrics.clone(),
        reads: ReadPolicy::from_config(&config),
        node_payload_bytes: config.limits.node_payload_bytes,
        writes: Default::default(),
    });
    let cache = Arc::new(SearchCache::new(config.cache.clone(), &metrics));
    let (finished, finished_rx) = tokio::sync::mpsc::unbounded_channel();
    let tasks = Arc::new(
        open_tasks(&config, &metrics)
            .map_err(|e| e.to_string())?
            .with_cache(cache.clone())
            .with_finished(finished)
            .with_max_tasks(config.tasks.max_tasks),
    );
    let webhooks = Arc::new(Webhooks::new(tasks.clone(), &metrics));
    let rebalancer = Arc::new(Rebalancer::new(
        &config,
        state,
        fleet.clone(),
        tasks.clone(),
    ));
    if !opt_test {
        rebalancer.start()?;
        // Nodes changed while the gateway was stopped: plan their moves now.
        rebalancer.reconfigure_at_start(&config.nodes)?;
    }
    let keys = Arc::new(KeySync::new(tasks.clone(), &metrics));
    let aliases = Arc::new(AliasService::new(
        tasks.clone(),
        config.alias_history,
        &metrics,
    ));
    let services = Arc::new(Services {
        aliases: aliases.clone(),
        webhooks: webhooks.clone(),
        keys: keys.clone(),
        tasks: tasks.clone(),
        indexes: IndexCache::default(),
        auth: AuthChecker::new(crate::auth::DEFAULT_TTL),
        facet_depth: Default::default(),
        order: Default::default(),
        cache,
    });
    let refresher = background_service(
        "task refresh",
        TaskRefreshService {
            fleet: fleet.clone(),
            tasks,
            rebalancer: rebalancer.clone(),
        },
    );
    let key_sync = background_service(
        "key alignment",
        KeySyncService {
            fleet: fleet.clone(),
            keys,
        },
    );
    let alias_watch = background_service("alias watch", AliasWatchService { aliases });
    let mover = background_service(
        "rebalance",
        RebalanceService {
            rebalancer: rebalancer.clone(),
        },
    );
    let gateway = Gateway::new(
        fleet,
        services,
        client,
        plugins,
        (config.server.max_body_bytes, config.clients.max_headers),
        rebalancer.clone(),
    );
    let metrics_for_trim = metrics.clone();
    let proxy = pingora::proxy::http_proxy(&server.configuration, gateway);
    let edge = Edge::new(proxy, config.clients, metrics.clone());
    let mut proxy = Service::new("miroir".to_string(), edge);
    // Small per-connection buffers: idle keep-alive connections stay cheap (Pingora reads
    // bodies in chunks of its own).
    proxy.add_listener(
        ListenerConfig::tcp(config.server.listen.to_string())
            .l4_buffer(L4BufferSettings::new(CLIENT_READ_BUFFER, 1460)),
    );

    let mut metrics_service = Service::new(
        "metrics".to_string(),
        HttpServer::new_app(MetricsApp {
            metrics: metrics.clone(),
        }),
    );
    metrics_service.add_tcp(&config.server.metrics_listen.to_string());

    let health_service = background_service(
        "health checks",
        HealthService {
            health: health.clone(),
        },
    );
    let listen = config.server.listen;
    let reloader = Arc::new(Reloader::new(
        config_path,
        config,
        rebalancer,
        health,
        metrics,
    ));
    let reload_service = background_service("topology reload", ReloadService { reloader });

    server.add_service(proxy);
    server.add_service(metrics_service);
    server.add_service(health_service);
    server.add_service(reload_service);
    server.add_service(refresher);
    server.add_service(mover);
    server.add_service(key_sync);
    server.add_service(alias_watch);
    server.add_service(background_service(
        "webhooks",
        WebhookService {
            webhooks,
            finished: std::sync::Mutex::new(Some(finished_rx)),
        },
    ));
    server.add_service(background_service(
        "memory trim",
        MemoryTrimService(MemoryTrim::new(metrics_for_trim)),
    ));
    log::info!("miroir listening on {listen}");
    server.run_forever()
}
/// Serves [`Metrics`] at `/metrics` on the metrics listener.
struct MetricsApp {
    metrics: Arc<Metrics>,
}

#[async_trait]
impl ServeHttp for MetricsApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let path = session.req_header().uri.path();
        let (status, content_type, body) = if path == "/metrics" || path == "/" {
            (200, "text/plain; version=0.0.4", self.metrics.render())
        } else {
            (404, "text/plain", b"not found\n".to_vec())
        };
        http::Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(body)
            .unwrap_or_default()
    }
}

/// Runs the task refresher ([`refresh::round`]) until shutdown.
struct TaskRefreshService {
    fleet: Arc<Fleet>,
    tasks: Arc<TaskService>,
    rebalancer: Arc<Rebalancer>,
}

#[async_trait]
impl BackgroundService for TaskRefreshService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        for n in 0.. {
            refresh::round(&self.fleet, &self.tasks, n).await;
            if n % crate::state::peers::EVERY_ROUNDS == 0 {
                let mine = self.rebalancer.desired_fingerprint();
                let disagreeing = self.tasks.announce(&mine);
                self.fleet
                    .metrics
                    .state_topology_disagreements
                    .set(disagreeing as i64);
            }
            tokio::select! {
                _ = tokio::time::sleep(refresh::PERIOD) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Follows the alias changes of the other gateways of a shared store.
struct AliasWatchService {
    aliases: Arc<AliasService>,
}

#[async_trait]
impl BackgroundService for AliasWatchService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        tokio::select! {
            _ = self.aliases.watch() => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Aligns the nodes' API keys at start, then every [`keys::PERIOD`].
struct KeySyncService {
    fleet: Arc<Fleet>,
    keys: Arc<KeySync>,
}

#[async_trait]
impl BackgroundService for KeySyncService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            self.keys.align(&self.fleet).await;
            tokio::select! {
                _ = tokio::time::sleep(keys::PERIOD) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Calls the webhooks as gateway tasks finish ([`crate::webhooks::run`]).
struct WebhookService {
    webhooks: Arc<Webhooks>,
    finished: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Finished>>>,
}

#[async_trait]
impl BackgroundService for WebhookService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let taken = self.finished.lock().ok().and_then(|mut f| f.take());
        let Some(finished) = taken else { return };
        tokio::select! {
            _ = crate::webhooks::run(self.webhooks.clone(), finished) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Drives the shard moves of a rebalance, one step at a time.
struct RebalanceService {
    rebalancer: Arc<Rebalancer>,
}

#[async_trait]
impl BackgroundService for RebalanceService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let r = &self.rebalancer;
        let max = r.settings.max_moves;
        let mut running: Vec<(u64, [String; 2], tokio::task::JoinHandle<()>)> = Vec::new();
        let following = tokio::spawn(rebalance::follow::watch(r.clone()));
        loop {
            running.retain(|(_, _, task)| !task.is_finished());
            // With a shared state, one gateway drives; a move it stops resumes with the next.
            if !r.take_lease() {
                for (_, _, task) in running.drain(..) {
                    task.abort();
                }
            }
            let busy: Vec<(u64, [String; 2])> = running
                .iter()
                .map(|(id, nodes, _)| (*id, nodes.clone()))
                .collect();
            let picked = match r.driving() {
                true => rebalance::mover::pick(r, &busy, max),
                false => Vec::new(),
            };
            for m in picked {
                let task = tokio::spawn(rebalance::mover::run(r.clone(), m.id));
                running.push((m.id, [m.from, m.to], task));
            }
            if running.is_empty() && r.driving() {
                if let Err(e) = r.tidy() {
                    log::error!("rebalance: {e}");
                }
            }
            tokio::select! {
                _ = r.idle(std::time::Duration::from_secs(1)) => {}
                _ = shutdown.changed() => {
                    // Every phase is persisted: a stopped move resumes at the next start.
                    for (_, _, task) in running {
                        task.abort();
                    }
                    following.abort();
                    return;
                }
            }
        }
    }
}

/// Runs [`MemoryTrim`] every few seconds until shutdown.
struct MemoryTrimService(MemoryTrim);

#[async_trait]
impl BackgroundService for MemoryTrimService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => self.0.tick(),
                _ = shutdown.changed() => return,
            }
        }
    }
}
