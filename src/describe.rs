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
    let (reads, writes) = tolerance(topology.groups.len(), topology.replication_factor);
    let _ = writeln!(
        out,
        "tolerates:        {reads} node failure(s) per shard for reads, {writes} for writes \
         (a write needs a majority of a shard's owners in one group)"
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

/// Node failures per shard a topology survives: reads need any one owner; writes need a
/// majority of the owners in at least one group.
pub fn tolerance(groups: usize, replication_factor: usize) -> (usize, usize) {
    let copies = groups * replication_factor;
    let reads = copies.saturating_sub(1);
    let writes =
        (groups.saturating_sub(1)) * replication_factor + replication_factor.saturating_sub(1) / 2;
    (reads, writes)
}

#[cfg(test)]
mod tests {
    use super::tolerance;

    #[test]
    fn tolerance_follows_the_quorum_rule() {
        assert_eq!(tolerance(1, 1), (0, 0));
        assert_eq!(tolerance(2, 1), (1, 1));
        assert_eq!(tolerance(1, 3), (2, 1));
        assert_eq!(tolerance(2, 3), (5, 4));
        assert_eq!(tolerance(3, 1), (2, 2));
    }
}
