//! Real Meilisearch nodes for the end-to-end suite, when a `meilisearch` binary is available
//! (`MEILI_BIN`, or `meilisearch` on `PATH`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

use super::gateway::{free_addr, ScratchDir};
use super::http::Client;

/// The binary to use, or `None` (the caller then prints a loud skip line).
pub fn binary() -> Option<PathBuf> {
    if let Ok(bin) = std::env::var("MEILI_BIN") {
        let path = PathBuf::from(bin);
        return path.is_file().then_some(path);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("meilisearch"))
            .find(|p| p.is_file())
    })
}

/// Prints the skip notice the README promises. Written to the stderr handle directly, which
/// the test harness does not capture, so the line shows even when the test passes.
pub fn skip_notice(test: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED {test}: no Meilisearch binary (set MEILI_BIN or put `meilisearch` on PATH) ***\n"
    );
}

/// A real Meilisearch process on a loopback port with a scratch database; killed on drop.
pub struct MeiliNode {
    pub addr: SocketAddr,
    child: Child,
    dir: ScratchDir,
    bin: PathBuf,
    master_key: String,
    args: Vec<String>,
    /// A turn of [`large_fleet_turn`], given back when the node stops.
    turn: Option<SemaphorePermit<'static>>,
}

/// Fleets of five real nodes start one at a time in this process: two at once (ten nodes
/// indexing on two cores, and their gateways) slowed every move several times over, past
/// the tests' deadlines.
static LARGE_FLEETS: Semaphore = Semaphore::const_new(1);

/// Waits for the turn to start a large fleet; keep it in one of its nodes ([`MeiliNode::keep`]).
pub async fn large_fleet_turn() -> SemaphorePermit<'static> {
    LARGE_FLEETS.acquire().await.expect("never closed")
}

fn spawn(
    bin: &PathBuf,
    dir: &ScratchDir,
    addr: SocketAddr,
    master_key: &str,
    args: &[String],
) -> Child {
    Command::new(bin)
        .args(args)
        .arg("--db-path")
        .arg(dir.0.join("data.ms"))
        .arg("--dump-dir")
        .arg(dir.0.join("dumps"))
        .arg("--snapshot-dir")
        .arg(dir.0.join("snapshots"))
        .arg("--http-addr")
        .arg(addr.to_string())
        .arg("--master-key")
        .arg(master_key)
        .arg("--no-analytics")
        .arg("--env")
        .arg("development")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn meilisearch")
}

impl MeiliNode {
    pub async fn start(bin: &PathBuf, master_key: &str) -> MeiliNode {
        MeiliNode::start_with(bin, master_key, &[]).await
    }

    /// Starts a node with extra command-line arguments.
    pub async fn start_with(bin: &PathBuf, master_key: &str, args: &[&str]) -> MeiliNode {
        let dir = ScratchDir::new("meili");
        let addr = free_addr();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let child = spawn(bin, &dir, addr, master_key, &args);
        let node = MeiliNode {
            addr,
            child,
            dir,
            bin: bin.clone(),
            master_key: master_key.to_string(),
            args,
            turn: None,
        };
        node.wait_ready().await;
        node
    }

    /// Holds `turn` until this node is dropped.
    pub fn keep(&mut self, turn: SemaphorePermit<'static>) {
        self.turn = Some(turn);
    }

    /// Starts a killed node again on its address and database, as after a crash.
    pub async fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(
            &self.bin,
            &self.dir,
            self.addr,
            &self.master_key,
            &self.args,
        );
        self.wait_ready().await;
    }

    async fn wait_ready(&self) {
        let addr = self.addr;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if Client::new(addr)
                .get("/health")
                .await
                .is_ok_and(|m| m.status == 200)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("meilisearch did not start on {addr}");
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (e.g. SIGSTOP, SIGCONT) to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: signalling our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }
}

impl Drop for MeiliNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One real node for reference, and Miroir over real nodes (one group), all with
/// `master_key`: what the differential tests compare.
pub struct ReferenceAndFleet {
    pub single: MeiliNode,
    pub nodes: Vec<MeiliNode>,
    pub gateway: super::gateway::GatewayProcess,
}

impl ReferenceAndFleet {
    /// Miroir over three nodes.
    pub async fn start(bin: &PathBuf, master_key: &str) -> ReferenceAndFleet {
        Self::start_with(bin, master_key, 3).await
    }

    /// Miroir over `n` nodes.
    pub async fn start_with(bin: &PathBuf, master_key: &str, n: usize) -> ReferenceAndFleet {
        use super::gateway::{Extra, GatewayProcess, NodeEntry};
        let single = MeiliNode::start(bin, master_key).await;
        let mut nodes = Vec::new();
        for _ in 0..n {
            nodes.push(MeiliNode::start(bin, master_key).await);
        }
        let entries: Vec<NodeEntry> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| NodeEntry::new(&format!("m{i}"), &n.url(), "a"))
            .collect();
        let env = [("MIROIR_MASTER_KEY", master_key)];
        let gateway = GatewayProcess::start(&entries, &Extra::default(), &env).await;
        ReferenceAndFleet {
            single,
            nodes,
            gateway,
        }
    }
}

/// `n` real nodes with `master_key`, and their `[[nodes]]` entries (one group).
pub async fn real_nodes(
    bin: &PathBuf,
    master_key: &str,
    n: usize,
) -> (Vec<MeiliNode>, Vec<super::gateway::NodeEntry>) {
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(MeiliNode::start(bin, master_key).await);
    }
    let entries = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| super::gateway::NodeEntry::new(&format!("m{i}"), &n.url(), "a"))
        .collect();
    (nodes, entries)
}
