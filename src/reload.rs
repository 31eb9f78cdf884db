//! Topology reload on `SIGHUP`: re-read and validate the configuration, then swap it in whole,
//! or keep the old one and say why.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::Config;
use crate::health::NodeHealth;
use crate::metrics::Metrics;
use crate::rebalance::Rebalancer;

/// Reloads the topology from `path`.
pub struct Reloader {
    pub path: PathBuf,
    pub rebalancer: Arc<Rebalancer>,
    pub health: Arc<NodeHealth>,
    pub metrics: Arc<Metrics>,
    /// The configuration in use, to tell what a reload cannot change.
    current: Mutex<Config>,
}

impl Reloader {
    pub fn new(
        path: PathBuf,
        config: Config,
        rebalancer: Arc<Rebalancer>,
        health: Arc<NodeHealth>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Reloader {
            path,
            rebalancer,
            health,
            metrics,
            current: Mutex::new(config),
        }
    }

    /// One reload attempt; returns the new generation or the reasons for keeping the old one.
    pub async fn reload(&self) -> Result<u64, String> {
        let path = self.path.clone();
        let loaded = tokio::task::spawn_blocking(move || Config::load(&path))
            .await
            .map_err(|e| format!("reload task failed: {e}"))?;
        let outcome = match loaded {
            Ok(next) => self.apply(next),
            Err(errors) => Err(errors.to_string()),
        };
        match &outcome {
            Ok(_) => {
                self.metrics.reloads.with_label_values(&["success"]).inc();
                self.health.wake();
            }
            Err(why) => {
                self.metrics.reloads.with_label_values(&["error"]).inc();
                log::error!(
                    "topology reload from {} failed; keeping generation {}:\n{why}",
                    self.path.display(),
                    self.rebalancer.fleet.topology.snapshot().generation
                );
            }
        }
        outcome
    }

    fn apply(&self, next: Config) -> Result<u64, String> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if next.cluster.shards != current.cluster.shards {
            return Err(format!(
                "`cluster.shards` cannot change from {} to {} while data exists: resharding is not supported",
                current.cluster.shards, next.cluster.shards
            ));
        }
        if next.server != current.server
            || next.timeouts != current.timeouts
            || next.hedging != current.hedging
            || next.limits != current.limits
            || next.plugins != current.plugins
        {
            log::warn!(
                "reload: changes to [server], [timeouts], [hedging], [limits] and [[plugins]] take effect at the next restart or upgrade"
            );
        }
        let old = self.rebalancer.fleet.topology.snapshot();
        let before: Vec<&str> = old.nodes.iter().map(|n| n.id.as_str()).collect();
        let after: Vec<&str> = next.nodes.iter().map(|n| n.id.as_str()).collect();
        let added: Vec<&&str> = after.iter().filter(|id| !before.contains(id)).collect();
        let removed: Vec<&&str> = before.iter().filter(|id| !after.contains(id)).collect();
        // Nodes added and removed change no owner here: the rebalance moves their shards,
        // and a removed node serves its shards until they have moved.
        let plan = self.rebalancer.reconfigure(&next.nodes, false)?;
        let topology = self.rebalancer.fleet.topology.snapshot();
        let generation = topology.generation;
        log::info!(
            "topology generation {generation}: {} nodes, {} groups, replication factor {}; added {added:?}, removed {removed:?}; {plan}",
            topology.nodes.len(),
            topology.groups.len(),
            topology.replication_factor
        );
        *current = next;
        Ok(generation)
    }
}

/// Listens for `SIGHUP` (which would otherwise end the process) and reloads on each.
pub struct ReloadService {
    pub reloader: Arc<Reloader>,
}

#[async_trait]
impl BackgroundService for ReloadService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                log::error!("cannot handle SIGHUP, topology reload is off: {e}");
                return;
            }
        };
        loop {
            tokio::select! {
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    log::info!("SIGHUP: reloading the topology from {}", self.reloader.path.display());
                    let _ = self.reloader.reload().await;
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}
