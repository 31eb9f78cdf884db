//! `miroir check-config`: the resolved topology for a good file, exact errors and a non-zero
//! exit for a bad one.

use std::process::Command;

fn check(path: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_miroir"))
        .arg("check-config")
        .arg(path)
        .env_remove("MIROIR_MASTER_KEY")
        .output()
        .expect("run miroir");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_example_config_is_valid_and_described() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/miroir.toml");
    let (code, out, err) = check(&path);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("configuration is valid"), "{out}");
    assert!(
        out.contains("shards:           64 (replication factor 1 in each of 1 group(s))"),
        "{out}"
    );
    assert!(out.contains("$MIROIR_MASTER_KEY (not set)"), "{out}");
    assert!(
        out.contains("tolerates:        0 node failure(s) per shard for reads, 0 for writes"),
        "{out}"
    );
    // Every node is listed with its share of the 64 shards.
    let owned: Vec<usize> = out
        .lines()
        .filter(|l| l.contains("owns"))
        .map(|l| {
            l.split("owns ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(owned.len(), 3, "{out}");
    assert_eq!(owned.iter().sum::<usize>(), 64);
}

#[test]
fn a_bad_config_is_refused_with_every_reason() {
    let dir = std::env::temp_dir().join(format!("miroir-check-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[cluster]\nshards = 16\nreplication_factor = 2\n\n[[nodes]]\nid = \"a\"\nurl = \"http://127.0.0.1:7701\"\n",
    )
    .unwrap();
    let (code, out, err) = check(&path);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(
        err.contains("`cluster.replication_factor` is 2 but group `default` has only 1 node(s)"),
        "{err}"
    );

    std::fs::write(&path, "[cluster]\nshards = 16\nreplicas = 2\n").unwrap();
    let (code, _, err) = check(&path);
    assert_eq!(code, 2);
    assert!(
        err.contains("line 3") && err.contains("unknown field `replicas`"),
        "{err}"
    );

    let (code, _, err) = check(&dir.join("missing.toml"));
    assert_eq!(code, 2);
    assert!(err.contains("missing.toml"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

use crate::support;

/// `check-config --plan`: the moves a reload would start, from the placement in the data
/// directory, with the documents each would copy, and the refusal of a plan whose shards
/// have no reachable copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_lists_the_moves_of_a_reload_without_changing_anything() {
    use support::fake_node::FakeNode;
    use support::gateway::{config_text, free_addr, Extra, GatewayProcess, NodeEntry};
    use support::meili_api::Api;

    let key = "plan-master-key-0123456789";
    let mut nodes = Vec::new();
    for name in ["n1", "n2", "n3", "n4"] {
        nodes.push(FakeNode::start(name, Some(key)).await);
    }
    let entries = |which: &[usize]| -> Vec<NodeEntry> {
        which
            .iter()
            .map(|&i| NodeEntry::new(&nodes[i].name, &nodes[i].url(), "a"))
            .collect()
    };
    let gw = GatewayProcess::start(
        &entries(&[0, 1, 2]),
        &Extra::default(),
        &[("MIROIR_MASTER_KEY", key)],
    )
    .await;
    let mut api = Api::new(gw.addr, Some(key));
    let docs: Vec<serde_json::Value> = (0..500).map(|i| serde_json::json!({"id": i})).collect();
    let task = api
        .write(
            "POST",
            "/indexes/m/documents",
            Some("application/json"),
            &serde_json::to_vec(&docs).unwrap(),
        )
        .await;
    assert_eq!(task["status"], "succeeded");
    let before = std::fs::read(gw.dir.0.join("data/placement.json")).unwrap();

    let plan = |which: &[usize], extra: &[&str]| {
        let path = gw.dir.0.join("next.toml");
        let text = config_text(
            free_addr(),
            free_addr(),
            &gw.dir.0,
            &entries(which),
            &Extra::default(),
        );
        std::fs::write(&path, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_miroir"))
            .args(["check-config", "--plan"])
            .args(extra)
            .arg(&path)
            .env("MIROIR_MASTER_KEY", key)
            .output()
            .expect("run miroir");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };

    // Growing to four nodes: every move goes to n4, a quarter of the shards, with their documents.
    let (code, out) = tokio::task::block_in_place(|| plan(&[0, 1, 2, 3], &[]));
    assert_eq!(code, 0, "{out}");
    let moves: Vec<Vec<&str>> = out
        .lines()
        .skip_while(|l| !l.starts_with("shard"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(moves.len(), 4, "{out}");
    assert!(moves.iter().all(|m| m[4] == "n4"), "{out}");
    let documents: u64 = moves.iter().map(|m| m[5].parse::<u64>().unwrap()).sum();
    let moved_shards: Vec<u32> = moves.iter().map(|m| m[0].parse().unwrap()).collect();
    let expected = (0..500)
        .filter(|i: &u32| {
            moved_shards.contains(&miroir::routing::shard_of(i.to_string().as_bytes(), 16))
        })
        .count() as u64;
    assert_eq!(documents, expected, "{out}");
    assert!(out.contains("tolerates:"), "{out}");

    // Removing n2 while it is down: its shards have no other copy.
    nodes[1].stop();
    let (code, out) = tokio::task::block_in_place(|| plan(&[0, 2], &[]));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("refused: shards"), "{out}");
    let (code, _) = tokio::task::block_in_place(|| plan(&[0, 2], &["--accept-loss"]));
    assert_eq!(code, 0);
    // Nothing changed.
    assert_eq!(
        std::fs::read(gw.dir.0.join("data/placement.json")).unwrap(),
        before
    );
}
