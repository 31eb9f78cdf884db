//! The human summary of a configuration that `miroir check-config` prints.

use std::fmt::Write;

use crate::config::Config;
use crate::topology::Topology;

/// Listens, keys, shards, groups and how many shards each node owns.
pub fn describe(config: &Config, topology: &Topology) -> String {
    let mut out = String::new();
    let s = &config.server;
    let _ = writeln!(out, "configuration is valid");
    let _ = writeln!(out, "listen:           {}", s.listen);
    let _ = writeln!(out, "metrics:          {}", s.metrics_listen);
    let _ = writeln!(out, "data directory:   {}", s.data_dir.display());
    let _ = writeln!(
        out,
        "master key:       ${} ({})",
        s.master_key_env,
        if s.master_key.is_some() {
            "set"
        } else {
            "not set"
        }
    );
    let _ = writeln!(
        out,
        "shards:           {} (replication factor {} in each of {} group(s))",
        topology.shards,
        topology.replication_factor,
        topology.groups.len()
    );
    let counts = topology.owned_counts();
    for group in &topology.groups {
        let _ = writeln!(out, "group {}:", group.name);
        for &n in &group.members {
            let node = &topology.nodes[n];
            let _ = writeln!(
                out,
                "  {:<16} {:<28} owns {} shards",
                node.id, node.url, counts[n]
            );
        }
    }
    let plugins: Vec<String> = config.plugins.iter().map(|p| format!("{p:?}")).collect();
    let _ = writeln!(out, "plugins:          {}", plugins.join(", "));
    out
}
