//! The `miroir` command: run the gateway, or check a configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use miroir::config::Config;
use miroir::rebalance::Rebalancer;
use miroir::topology::Topology;
use pingora::server::configuration::Opt;

/// Small allocations on every request (a node's answer, a merged page): mimalloc's
/// thread-local heaps take about a tenth of the gateway's CPU less than glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "miroir",
    version,
    about = "A gateway that makes a fleet of Meilisearch nodes look like one"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The Miroir configuration: a TOML file, or a directory of them.
    #[arg(long, value_name = "PATH", default_value = "/etc/miroir/miroir.toml")]
    config: PathBuf,
    #[command(flatten)]
    pingora: Opt,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a configuration and print the topology it describes.
    CheckConfig {
        /// A TOML file or a directory of them.
        path: PathBuf,
        /// Print the shard moves a reload to this configuration would start (reading the
        /// placement in its data directory and asking the nodes), changing nothing.
        #[arg(long)]
        plan: bool,
        /// With `--plan`: do not refuse a plan whose shards have no reachable copy.
        #[arg(long, requires = "plan")]
        accept_loss: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig {
            path,
            plan,
            accept_loss,
        }) => {
            if plan {
                check_plan(&path, accept_loss)
            } else {
                check_config(&path)
            }
        }
        None => serve(cli.config, cli.pingora),
    }
}

fn serve(path: PathBuf, opt: Opt) -> ExitCode {
    // Until the reload service installs its handler, SIGHUP must not end the process.
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!(
                "miroir: invalid configuration {}:\n{errors}",
                path.display()
            );
            return ExitCode::from(2);
        }
    };
    let mut logger = env_logger::Builder::new();
    // Pingora logs at error level each pooled connection it finds gone and replaces (a
    // node's keep-alive timeout); the gateway reports real node failures itself.
    // `log_level` or `RUST_LOG` can turn it back on.
    logger.parse_filters("pingora_core::connectors=off");
    logger.parse_filters(&config.server.log_level);
    if let Ok(filters) = std::env::var("RUST_LOG") {
        logger.parse_filters(&filters);
    }
    logger.format_timestamp_millis().init();
    match miroir::server::run(path, config, opt) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("miroir: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{} is invalid:\n{errors}", path.display());
            return ExitCode::from(2);
        }
    };
    // The effective placement when the data directory has one, else where a new cluster
    // would put the shards.
    let topology = match miroir::rebalance::load_state(&config) {
        Ok(state) => Rebalancer::topology(&state, &config.nodes, 1),
        Err(_) => Topology::new(&config.cluster, &config.nodes, 1),
    };
    print!("{}", miroir::describe::describe(&config, &topology));
    ExitCode::SUCCESS
}

fn check_plan(path: &std::path::Path, accept_loss: bool) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{} is invalid:\n{errors}", path.display());
            return ExitCode::from(2);
        }
    };
    let state = match miroir::rebalance::load_state(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("refused: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let client = miroir::node_client::NodeClient::new(config.timeouts, config.limits);
    let master = config
        .server
        .master_key
        .as_ref()
        .and_then(|k| http::HeaderValue::from_str(&format!("Bearer {k}")).ok());
    let preview = runtime.block_on(miroir::rebalance::preview::preview(
        &config,
        &state,
        &client,
        master.as_ref(),
    ));
    print!("{}", preview.text);
    if preview.refused && !accept_loss {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
