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
