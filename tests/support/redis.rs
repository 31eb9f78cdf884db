//! A `redis-server` of a test's own on a free loopback port, stopped on drop; `None` (with
//! a loud notice) where the binary is missing.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    pub fn start(test: &str) -> Option<RedisServer> {
        let port = super::gateway::free_addr().port();
        let server = RedisServer::start_on(port);
        if server.is_none() {
            eprintln!(
                "SKIPPED {test}: no redis-server on PATH, the shared state is not tested (apt-get install redis-server)"
            );
        }
        server
    }

    pub fn start_on(port: u16) -> Option<RedisServer> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(RedisServer { child, port })
    }

    /// The `[state]` tables of a gateway sharing this Redis under `prefix`.
    pub fn state_config(&self, prefix: &str) -> String {
        format!(
            "[state]\nbackend = \"redis\"\n\n[state.redis]\nurl = \"redis://127.0.0.1:{}\"\nprefix = \"{prefix}:\"\ntimeout_ms = 500\n\n",
            self.port
        )
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
