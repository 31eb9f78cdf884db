//! The shared rebalance state between two gateways on one real `redis-server` (skipped,
//! loudly, without one): a follower holds its writes while the driver's barrier is marked
//! and lets them go with the change; a mark left by a driver that lost its lease is ended by
//! the next driver, and the old driver can then change nothing.

use std::sync::Arc;
use std::time::Duration;

use super::{load_state, Rebalancer};
use crate::config::Config;
use crate::state::redis::RedisStore;
use crate::state::redis_tests::Server;
use crate::state::StateStore;
use crate::tasks::TaskService;
use crate::transport::scripted::TestFleet;

/// A gateway on `redis` (prefix `prefix`), its data directory its own.
fn gateway(redis: &Server, prefix: &str, name: &str) -> Arc<Rebalancer> {
    let dir = std::env::temp_dir().join(format!("miroir-shared-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text = format!(
        "[server]\ndata_dir = \"{}\"\n[cluster]\nshards = 4\nreplication_factor = 1\n\
         [state]\nbackend = \"redis\"\n[state.redis]\nurl = \"redis://127.0.0.1:{}\"\nprefix = \"{prefix}:\"\n\
         [[nodes]]\nid = \"g0\"\nurl = \"http://127.0.0.1:7100\"\ngroup = \"g\"\n\
         [[nodes]]\nid = \"g1\"\nurl = \"http://127.0.0.1:7101\"\ngroup = \"g\"\n",
        dir.display(),
        redis.port
    );
    let config = Config::from_toml_str(&text, name, |_| None).unwrap();
    let settings = redis.settings(prefix);
    let tasks = TaskService::open_with(Box::new(move || {
        RedisStore::open(&settings).map(|s| Arc::new(s) as Arc<dyn StateStore>)
    }))
    .unwrap();
    let fleet = TestFleet::new(&["g"], 2, 4, None).fleet;
    let state = load_state(&config).unwrap();
    let r = Arc::new(Rebalancer::new(
        &config,
        state,
        Arc::new(fleet),
        Arc::new(tasks),
    ));
    r.start().unwrap();
    r
}

/// Whether a write could enter `r`'s gate now.
async fn writes_flow(r: &Rebalancer) -> bool {
    tokio::time::timeout(Duration::from_millis(300), r.fleet.writes.enter())
        .await
        .is_ok()
}

/// Waits until `check` holds, at most 5 s.
async fn soon(mut check: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..50 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_barrier_holds_the_other_gateway_and_a_stale_one_is_ended() {
    let Some(redis) = Server::start() else {
        return;
    };
    let a = gateway(&redis, "barrier", "a");
    let b = gateway(&redis, "barrier", "b");
    assert_eq!(a.snapshot(), b.snapshot(), "one shared state");
    assert!(a.take_lease(), "the first gateway takes the lease");
    assert!(!b.take_lease(), "one driver at a time");
    let follow = tokio::spawn(super::follow::watch(b.clone()));

    // A barrier through A holds B's writes until A's change ends it.
    let held = a.hold_everywhere(7, Duration::from_secs(5)).await.unwrap();
    assert!(!writes_flow(&b).await, "B's writes flow during A's barrier");
    held.commit(|s| {
        s.paused = true;
        Ok(())
    })
    .unwrap();
    assert!(
        soon(async || b.snapshot().paused).await,
        "B follows the change"
    );
    assert!(
        writes_flow(&b).await,
        "B's writes are held after the barrier"
    );
    assert_eq!(b.snapshot().barrier, None);

    // A's lease goes (as if it stopped renewing it) in the middle of a barrier: B takes it
    // over, ends the mark, and A's change is refused.
    let held = a.hold_everywhere(8, Duration::from_secs(5)).await.unwrap();
    assert!(!writes_flow(&b).await);
    let store = a.tasks.state().unwrap();
    store
        .release(super::shared::LEASE, a.tasks.holder())
        .unwrap();
    assert!(b.take_lease(), "B takes the lease over");
    assert_eq!(b.snapshot().barrier, None, "B ended the mark it found");
    assert!(
        soon(async || writes_flow(&b).await).await,
        "B's writes flow again"
    );
    let refused = held.commit(|s| {
        s.paused = false;
        Ok(())
    });
    assert!(
        refused.is_err(),
        "the old driver changed the state: {refused:?}"
    );
    assert!(b.snapshot().paused, "nothing changed");
    let _ = a.reload();
    assert!(a.snapshot().paused);
    follow.abort();
}
