//! Runs the real `miroir` binary on loopback with a generated configuration.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::http::Client;

/// A free loopback port (bound then released; good enough on a test machine).
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
}

/// A fresh scratch directory under the system temp dir, removed on drop.
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    pub fn new(tag: &str) -> ScratchDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "miroir-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        ScratchDir(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One `[[nodes]]` entry.
pub struct NodeEntry {
    pub id: String,
    pub url: String,
    pub group: String,
}

impl NodeEntry {
    pub fn new(id: &str, url: &str, group: &str) -> Self {
        NodeEntry {
            id: id.into(),
            url: url.into(),
            group: group.into(),
        }
    }

    /// One group of test nodes.
    pub fn for_fakes(nodes: &[super::fake_node::FakeNode]) -> Vec<NodeEntry> {
        nodes
            .iter()
            .map(|n| NodeEntry::new(&n.name, &n.url(), "a"))
            .collect()
    }
}

/// What a test adds to the generated configuration.
#[derive(Default, Clone)]
pub struct Extra {
    /// Lines added to `[server]`.
    pub server: String,
    /// Text appended at the end (tables of its own).
    pub tail: String,
}

/// Writes a configuration for `nodes` with fast health checks. Two failed checks mark a node
/// down, not one: a node busy indexing on this shared machine can miss a single check, and
/// a sole owner marked down fails its shards' reads.
pub fn config_text(
    listen: SocketAddr,
    metrics: SocketAddr,
    data_dir: &Path,
    nodes: &[NodeEntry],
    extra: &Extra,
) -> String {
    let mut text = format!(
        "[server]\nlisten = \"{listen}\"\nmetrics_listen = \"{metrics}\"\ndata_dir = \"{}\"\nthreads = 2\n\
         grace_period_seconds = 1\ngraceful_shutdown_timeout_seconds = 2\npid_file = \"{}\"\nupgrade_sock = \"{}\"\n{}\n\
         [health]\ninterval_ms = 200\ntimeout_ms = 1000\nfailures_before_down = 2\n\n\
         [cluster]\nshards = 16\nreplication_factor = 1\n\n",
        data_dir.join("data").display(),
        data_dir.join("miroir.pid").display(),
        data_dir.join("upgrade.sock").display(),
        extra.server,
    );
    for n in nodes {
        text.push_str(&format!(
            "[[nodes]]\nid = \"{}\"\nurl = \"{}\"\ngroup = \"{}\"\n\n",
            n.id, n.url, n.group
        ));
    }
    text.push_str(&extra.tail);
    text
}

/// A running gateway process; killed on drop.
pub struct GatewayProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub config_path: PathBuf,
    pub dir: ScratchDir,
    env: Vec<(String, String)>,
}

fn spawn(config_path: &Path, dir: &Path, env: &[(&str, &str)]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("miroir.log"))
        .expect("log file");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_miroir"));
    cmd.arg("--config")
        .arg(config_path)
        .env("RUST_LOG", "info")
        .env_remove("MIROIR_MASTER_KEY")
        .stdout(Stdio::null())
        .stderr(log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn miroir")
}

impl GatewayProcess {
    /// Starts `miroir --config <generated>` and waits until it answers `/health`.
    pub async fn start(nodes: &[NodeEntry], extra: &Extra, env: &[(&str, &str)]) -> GatewayProcess {
        let dir = ScratchDir::new("gw");
        let addr = free_addr();
        let metrics_addr = free_addr();
        let config_path = dir.0.join("miroir.toml");
        std::fs::write(
            &config_path,
            config_text(addr, metrics_addr, &dir.0, nodes, extra),
        )
        .expect("write config");
        let child = spawn(&config_path, &dir.0, env);
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let gw = GatewayProcess {
            child,
            addr,
            metrics_addr,
            config_path,
            dir,
            env,
        };
        gw.wait_until_listening().await;
        gw
    }

    /// Stops the process with SIGKILL, as a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the process (SIGKILL, as a crash) and starts it again on the same files.
    pub async fn restart(&mut self) {
        self.kill();
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.child = spawn(&self.config_path, &self.dir.0, &env);
        self.wait_until_listening().await;
    }

    /// Until both listeners answer: the metrics one is a service of its own, started apart.
    async fn wait_until_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let mut client = Client::new(self.addr);
            client.timeout = Duration::from_secs(2);
            let mut metrics = Client::new(self.metrics_addr);
            metrics.timeout = Duration::from_secs(2);
            if client.get("/health").await.is_ok() && metrics.get("/metrics").await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("miroir did not start; log:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("miroir.log")).unwrap_or_default()
    }

    /// Replaces the configuration file (then call [`Self::sighup`]).
    pub fn write_config(&self, nodes: &[NodeEntry], extra: &Extra) {
        let text = config_text(self.addr, self.metrics_addr, &self.dir.0, nodes, extra);
        write_atomically(&self.config_path, &text);
    }

    pub fn write_raw_config(&self, text: &str) {
        write_atomically(&self.config_path, text);
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child process.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    pub fn sighup(&self) {
        self.signal(libc::SIGHUP);
    }

    /// The metrics text.
    pub async fn metrics(&self) -> String {
        Client::new(self.metrics_addr)
            .get("/metrics")
            .await
            .expect("metrics")
            .text()
    }

    /// The value of one sample line of the metrics (e.g. `miroir_topology_generation`).
    pub async fn metric(&self, sample: &str) -> Option<f64> {
        let text = self.metrics().await;
        text.lines()
            .find(|l| l.starts_with(sample) && l[sample.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// Whether the process is still alive.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write config");
    std::fs::rename(&tmp, path).expect("rename config");
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it returns true or `within` passes.
pub async fn eventually(within: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
