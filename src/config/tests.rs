use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:7700"
metrics_listen = "127.0.0.1:7710"
data_dir = "data"

[cluster]
shards = 64
replication_factor = 1

[[nodes]]
id = "n1"
url = "http://127.0.0.1:7701"
group = "a"

[[nodes]]
id = "n2"
url = "http://127.0.0.1:7702/"
group = "a"
"#;

fn errors_of(text: &str) -> Vec<String> {
    Config::from_toml_str(text, "test.toml", no_env)
        .unwrap_err()
        .0
}

#[test]
fn a_good_file_validates_with_defaults_filled_in() {
    let c = Config::from_toml_str(GOOD, "test.toml", |k| {
        (k == "MIROIR_MASTER_KEY").then(|| "secret".to_string())
    })
    .unwrap();
    assert_eq!(c.cluster.shards, 64);
    assert_eq!(c.nodes.len(), 2);
    assert_eq!(c.nodes[1].url, "http://127.0.0.1:7702");
    assert_eq!(c.nodes[1].authority, "127.0.0.1:7702");
    assert_eq!(c.server.master_key.as_deref(), Some("secret"));
    assert_eq!(c.server.max_body_bytes, 100_000_000);
    assert_eq!(c.timeouts.connect, Duration::from_secs(1));
    assert_eq!(c.timeouts.request, Duration::from_secs(30));
    assert_eq!(
        c.hedging,
        Hedging {
            enabled: true,
            delay: None,
            min_delay: Duration::from_millis(20)
        }
    );
    assert_eq!(c.limits.node_concurrency, 256);
    assert_eq!(c.plugins, PluginConfig::defaults());
}

#[test]
fn hedging_and_limits_are_read_and_checked() {
    let text = format!(
        "{GOOD}\n[timeouts]\nrequest_ms = 500\n[hedging]\nenabled = false\ndelay_ms = 40\n[limits]\nnode_concurrency = 8\n"
    );
    let c = Config::from_toml_str(&text, "t", no_env).unwrap();
    assert_eq!(c.timeouts.request, Duration::from_millis(500));
    assert!(!c.hedging.enabled);
    assert_eq!(c.hedging.delay, Some(Duration::from_millis(40)));
    assert_eq!(c.limits.node_concurrency, 8);

    let errs = errors_of(&format!(
        "{GOOD}\n[hedging]\ndelay_ms = 0\n[limits]\nnode_concurrency = 0\n"
    ));
    assert_eq!(
        errs,
        [
            "`hedging.delay_ms` must be greater than 0",
            "`limits.node_concurrency` must be greater than 0"
        ]
    );
    let errs = errors_of(&format!("{GOOD}\n[hedging]\ndelay = 3\n"));
    assert!(errs[0].contains("unknown field `delay`"), "{}", errs[0]);
}

#[test]
fn the_master_key_variable_can_be_renamed() {
    let text = GOOD.replace(
        "data_dir = \"data\"",
        "data_dir = \"data\"\nmaster_key_env = \"MK\"",
    );
    let c = Config::from_toml_str(&text, "t", |k| (k == "MK").then(|| "k2".to_string())).unwrap();
    assert_eq!(c.server.master_key.as_deref(), Some("k2"));
}

#[test]
fn unknown_keys_are_named_with_their_line() {
    let text = GOOD.replace("shards = 64", "shards = 64\nshard_count = 3");
    let errs = errors_of(&text);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].contains("shard_count"), "{}", errs[0]);
    assert!(errs[0].contains("line 9"), "{}", errs[0]);
    let text = GOOD.replace(
        "group = \"a\"\n\n[[nodes]]",
        "group = \"a\"\nzone = 2\n\n[[nodes]]",
    );
    let errs = errors_of(&text);
    assert!(
        errs[0].contains("zone") && errs[0].contains("line 15"),
        "{}",
        errs[0]
    );
}

#[test]
fn node_weights_and_rebalance_settings_are_checked() {
    let text = GOOD.replace(
        "group = \"a\"\n\n[[nodes]]",
        "group = \"a\"\nweight = 3\n\n[[nodes]]",
    );
    let c = Config::from_toml_str(&text, "test.toml", no_env).unwrap();
    assert_eq!(c.nodes[0].weight, 3);
    assert_eq!(c.nodes[1].weight, 1);
    assert_eq!(c.rebalance.copy, super::CopyMode::Auto);
    let text = GOOD.replace(
        "group = \"a\"\n\n[[nodes]]",
        "group = \"a\"\nweight = 0\n\n[[nodes]]",
    ) + "\n[rebalance]\ncopy = \"ftp\"\n";
    let errs = errors_of(&text);
    assert!(errs.iter().any(|e| e.contains("`weight` is 0")), "{errs:?}");
    assert!(
        errs.iter().any(|e| e.contains("rebalance.copy")),
        "{errs:?}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"
[server]
listen = "nowhere"
[cluster]
shards = 0
replication_factor = 3
[[nodes]]
id = "n1"
url = "https://10.0.0.1:7700"
[[nodes]]
id = "n1"
url = "http://10.0.0.2"
[[nodes]]
id = "bad id"
url = "http://10.0.0.3:7700/x"
"#;
    let errs = errors_of(text);
    let all = errs.join("\n");
    for needle in [
        "`server.listen`: `nowhere`",
        "`cluster.shards` must be between 1 and 65536, not 0",
        "TLS to nodes is not supported",
        "the id `n1` is used by another node",
        "the port is missing",
        "`nodes[2]` (id `bad id`): a node id is",
        "no path, query or credentials",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
}

#[test]
fn replication_factor_cannot_exceed_a_group() {
    let text = GOOD.replace("replication_factor = 1", "replication_factor = 3");
    let errs = errors_of(&text);
    assert_eq!(
        errs,
        vec!["`cluster.replication_factor` is 3 but group `a` has only 2 node(s)".to_string()]
    );
}

#[test]
fn duplicate_addresses_are_rejected() {
    let text = GOOD.replace("7702/", "7701");
    assert!(errors_of(&text)[0].contains("is the address of another node"));
}

#[test]
fn a_directory_merges_files_and_refuses_a_key_set_twice() {
    let dir = std::env::temp_dir().join(format!("miroir-conf-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("00-server.toml"),
        "[server]\nlisten = \"127.0.0.1:7700\"\n[cluster]\nshards = 16\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("10-nodes.toml"),
        "[[nodes]]\nid = \"a\"\nurl = \"http://127.0.0.1:7701\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("20-nodes.toml"),
        "[[nodes]]\nid = \"b\"\nurl = \"http://127.0.0.1:7702\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
    let c = Config::load_with_env(&dir, no_env).unwrap();
    assert_eq!(c.cluster.shards, 16);
    assert_eq!(
        c.nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    std::fs::write(dir.join("30-more.toml"), "[cluster]\nshards = 32\n").unwrap();
    let errs = Config::load_with_env(&dir, no_env).unwrap_err().0;
    assert!(
        errs[0].contains("`cluster.shards` is set in both"),
        "{errs:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn node_urls_are_parsed_strictly() {
    assert_eq!(
        parse_node_url("http://[::1]:7700").unwrap().2,
        "[::1]:7700".parse().unwrap()
    );
    assert_eq!(
        parse_node_url("http://localhost:7700").unwrap().1,
        "localhost:7700"
    );
    for bad in [
        "127.0.0.1:7700",
        "http://:7700",
        "http://h:0",
        "http://h:99999",
        "http://u@h:1",
    ] {
        assert!(parse_node_url(bad).is_err(), "{bad} should be refused");
    }
}

#[test]
fn client_limits_are_read_and_checked() {
    let c = Config::from_toml_str(GOOD, "t", no_env).unwrap();
    assert_eq!(c.clients.header_timeout, Duration::from_secs(5));
    assert_eq!(c.clients.max_headers, 96);
    let text = format!(
        "{GOOD}\n[clients]\nheader_timeout_ms = 700\nidle_timeout_ms = 2000\nmax_connections = 50\nreserved_connections = 0\n"
    );
    let c = Config::from_toml_str(&text, "t", no_env).unwrap();
    assert_eq!(c.clients.header_timeout, Duration::from_millis(700));
    assert_eq!(c.clients.idle_timeout, Duration::from_secs(2));
    assert_eq!(
        (c.clients.max_connections, c.clients.reserved_connections),
        (50, 0)
    );
    let errs = errors_of(&format!(
        "{GOOD}\n[clients]\nmax_connections = 0\nmax_headers = 300\n"
    ));
    assert_eq!(
        errs,
        [
            "`clients.max_connections` must be greater than 0",
            "`clients.max_headers` must be at most 256"
        ]
    );
}
