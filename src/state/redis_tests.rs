//! The Redis backend against a real `redis-server` (started on a free loopback port; the
//! tests say so loudly and pass when there is none): the backend contract, two gateways on
//! one Redis, uids after Redis lost its last writes, a gateway that fell behind the change
//! stream, and Redis going away and coming back.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::contract;
use super::redis::{RedisSettings, RedisStore};
use super::StateStore;
use crate::tasks::TaskFilter;

/// A `redis-server` of its own, stopped on drop.
pub(crate) struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    pub fn start() -> Option<Server> {
        let port = TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        Server::start_on(port)
    }

    fn start_on(port: u16) -> Option<Server> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            eprintln!("SKIPPED: no redis-server on PATH; the Redis backend is not tested (apt-get install redis-server)");
            return None;
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Server { child, port })
    }

    pub fn settings(&self, prefix: &str) -> RedisSettings {
        RedisSettings {
            url: format!("redis://127.0.0.1:{}", self.port),
            password: None,
            prefix: format!("{prefix}:"),
            timeout: Duration::from_millis(500),
        }
    }

    fn cli(&self, args: &[&str]) {
        let status = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .stdout(Stdio::null())
            .status()
            .expect("redis-cli");
        assert!(status.success());
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn the_redis_store_keeps_the_contract() {
    let Some(server) = Server::start() else {
        return;
    };
    let settings = server.settings("contract");
    contract::check_all(&|| Box::new(RedisStore::open(&settings).unwrap()));
}

#[test]
fn two_gateways_see_each_others_writes() {
    let Some(server) = Server::start() else {
        return;
    };
    let a = RedisStore::open(&server.settings("two")).unwrap();
    let b = RedisStore::open(&server.settings("two")).unwrap();
    let t = contract::create(&a);
    let u = contract::create(&b);
    assert!(u.uid > t.uid, "one uid space");
    let mine = TaskFilter {
        uids: Some(vec![t.uid, u.uid]),
        ..TaskFilter::default()
    };
    assert_eq!(b.index().unwrap().select(&mine).len(), 2);
    let mut done = t.clone();
    done.view = Some(serde_json::json!({"status": "succeeded"}));
    b.update(&done).unwrap();
    assert!(
        a.index().unwrap().finished().contains(t.uid),
        "A sees B's update"
    );
    a.delete(&[u.uid]).unwrap();
    assert!(
        !b.index().unwrap().select(&mine).contains(u.uid),
        "B sees A's deletion"
    );
    assert_eq!(b.get(t.uid).unwrap(), Some(done));
}

#[test]
fn uids_never_go_back_when_redis_loses_its_last_writes() {
    let Some(server) = Server::start() else {
        return;
    };
    let a = RedisStore::open(&server.settings("floor")).unwrap();
    let last = contract::create(&a).uid;
    // As after a crash with writes not yet on disk, or a failover to a late replica.
    server.cli(&["SET", "floor:next_uid", "0"]);
    assert!(a.reserve_uids(1).unwrap() > last, "this gateway remembers");
    server.cli(&["SET", "floor:next_uid", "0"]);
    let fresh = RedisStore::open(&server.settings("floor")).unwrap();
    assert!(
        fresh.reserve_uids(1).unwrap() > last,
        "a gateway opening later starts above every stored task"
    );
}

#[test]
fn a_gateway_behind_the_trimmed_stream_reloads_its_index() {
    let Some(server) = Server::start() else {
        return;
    };
    let a = RedisStore::open(&server.settings("trim")).unwrap();
    let b = RedisStore::open(&server.settings("trim")).unwrap();
    let first = contract::create(&a).uid;
    server.cli(&["XTRIM", "trim:task_changes", "MAXLEN", "0"]);
    let second = contract::create(&a).uid;
    let both = TaskFilter {
        uids: Some(vec![first, second]),
        ..TaskFilter::default()
    };
    assert_eq!(b.index().unwrap().select(&both).len(), 2);
}

#[test]
fn a_redis_down_is_a_prompt_error_and_its_return_is_picked_up() {
    let Some(mut server) = Server::start() else {
        return;
    };
    let port = server.port;
    let store = RedisStore::open(&server.settings("down")).unwrap();
    contract::create(&store);
    server.stop();
    let started = Instant::now();
    let err = store.reserve_uids(1).unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let _server = Server::start_on(port).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.reserve_uids(1) {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                assert!(e.is_unavailable(), "{e}");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("Redis is back but the store is not: {e}"),
        }
    }
}

#[test]
fn redis_over_tls() {
    let dir = std::env::temp_dir().join(format!("miroir-redis-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED: no openssl to make a certificate; Redis over TLS is not tested");
        return;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .args([
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(child) = child else {
        eprintln!("SKIPPED: no redis-server on PATH; Redis over TLS is not tested");
        return;
    };
    let mut server = Server { child, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let settings = RedisSettings {
        // A self-signed certificate: not one the Web PKI roots vouch for.
        url: format!("rediss://127.0.0.1:{port}/#insecure"),
        ..server.settings("tls")
    };
    let store = RedisStore::open(&settings).unwrap();
    let t = contract::create(&store);
    assert_eq!(store.get(t.uid).unwrap(), Some(t));
    let checked = RedisSettings {
        url: format!("rediss://127.0.0.1:{port}"),
        ..server.settings("tls")
    };
    let refused = RedisStore::open(&checked)
        .err()
        .expect("an unknown certificate is refused");
    assert!(refused.is_unavailable(), "{refused}");
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn only_writes_left_by_a_stopped_gateway_are_recovered() {
    let Some(server) = Server::start() else {
        return;
    };
    let store = RedisStore::open(&server.settings("intents")).unwrap();
    let old = store.intent_begin(b"left behind", &[]).unwrap();
    let fresh = store.intent_begin(b"in flight", &[]).unwrap();
    // As if recorded long ago by a gateway that stopped since.
    server.cli(&["HSET", "intents:intent_times", &old.to_string(), "0"]);
    assert_eq!(store.intents().unwrap(), [(old, b"left behind".to_vec())]);
    store.settle(fresh, None, &[]).unwrap();
    store.settle(old, None, &[]).unwrap();
    assert!(store.intents().unwrap().is_empty());
}

#[test]
fn every_gateway_sees_the_same_lagging_nodes() {
    let Some(server) = Server::start() else {
        return;
    };
    let open = |prefix: &'static str| {
        let settings = server.settings(prefix);
        crate::tasks::TaskService::open_with(Box::new(move || {
            RedisStore::open(&settings)
                .map(|s| std::sync::Arc::new(s) as std::sync::Arc<dyn StateStore>)
        }))
        .unwrap()
    };
    let (a, b) = (open("lagging"), open("lagging"));
    let req = crate::transport::NodeRequest::get("/indexes/m/documents".to_string());
    a.hint("n1", &req).unwrap();
    b.sync_lagging();
    assert!(b.is_lagging("n1"), "B sees the hint A queued");
    let store = RedisStore::open(&server.settings("lagging")).unwrap();
    for (key, _) in store.hints("n1", 10).unwrap() {
        store.hint_delete(&key).unwrap();
    }
    b.sync_lagging();
    assert!(!b.is_lagging("n1"), "B sees the queue replayed");
}
