//! The `miroir` command: run the gateway, or check a configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use miroir::config::Config;
use miroir::topology::Topology;
use pingora::server::configuration::Opt;

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
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig { path }) => check_config(&path),
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
    print!(
        "{}",
        miroir::describe::describe(&config, &Topology::new(&config.cluster, &config.nodes, 1))
    );
    ExitCode::SUCCESS
}
