//! The official Meilisearch Python SDK, unchanged, against one real node and against Miroir
//! over three: the same script prints the same results. Runs when a `meilisearch` binary and
//! Python's `meilisearch` package are both available; otherwise says so and passes.

use crate::support;

use std::process::Command;

use support::meili::{self, ReferenceAndFleet};

const KEY: &str = "miroir-sdk-master-key-0123456789";

fn python_sdk() -> bool {
    Command::new("python3")
        .args(["-c", "import meilisearch"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(url: &str) -> Vec<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/smoke.py");
    let data = support::data::people_path();
    let out = Command::new("python3")
        .args([script, url, KEY, data.to_str().unwrap()])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "the SDK script failed on {url}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_sees_one_meilisearch() {
    let Some(bin) = meili::binary() else {
        meili::skip_notice("the_python_sdk_sees_one_meilisearch");
        return;
    };
    if !python_sdk() {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "\n*** SKIPPED the_python_sdk_sees_one_meilisearch: Python's `meilisearch` package is not installed (pip install meilisearch) ***\n");
        return;
    }
    // The nodes live as long as the binding.
    let ReferenceAndFleet {
        single,
        nodes: _nodes,
        gateway: gw,
    } = ReferenceAndFleet::start(&bin, KEY).await;
    let (a, b) = tokio::task::spawn_blocking({
        let (s, g) = (single.url(), format!("http://{}", gw.addr));
        move || (run(&s), run(&g))
    })
    .await
    .unwrap();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }
    assert!(a.len() >= 15, "the script printed only {} steps", a.len());
}

/// A blue-green reindex through Miroir over three real nodes with the unchanged SDK: by alias
/// (fill, flip, write through the alias, flip back) and by `swap_indexes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_does_a_blue_green_reindex_through_miroir() {
    let Some(bin) = meili::binary() else {
        meili::skip_notice("the_python_sdk_does_a_blue_green_reindex_through_miroir");
        return;
    };
    if !python_sdk() {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "\n*** SKIPPED the_python_sdk_does_a_blue_green_reindex_through_miroir: Python's `meilisearch` package is not installed (pip install meilisearch) ***\n");
        return;
    }
    let ReferenceAndFleet {
        nodes: _nodes,
        gateway: gw,
        ..
    } = ReferenceAndFleet::start(&bin, KEY).await;
    let url = format!("http://{}", gw.addr);
    let out = tokio::task::spawn_blocking(move || {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/blue_green.py");
        Command::new("python3")
            .args([script, &url, KEY])
            .output()
            .expect("python3")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "the blue-green script failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        gw.log()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "blue-green ok");
}
