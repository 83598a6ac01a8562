//! `ctrackd`: the ctrack daemon, its offline replay tool and its configuration checker.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ctrack_server::config::{self, Config, DaemonArgs, LogFormat};
use ctrack_server::daemon;
use ctrack_server::replay::{self, ReplayArgs};
use tracing_subscriber::EnvFilter;

/// ctrack: connection tracking for Linux nodes, faithful to Open vSwitch's userspace
/// conntrack, managed over gRPC. Without a subcommand, runs the daemon.
#[derive(Debug, Parser)]
#[command(name = "ctrackd", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    daemon: DaemonArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Track the packets of a capture file and print each one's ct_state (OVS
    /// `test-conntrack pcap` format).
    Replay(ReplayArgs),
    /// Validate a configuration file and print the effective configuration.
    CheckConfig {
        /// The TOML file.
        file: std::path::PathBuf,
    },
}

/// Exit status for configuration errors (BSD `EX_CONFIG`).
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Replay(args)) => replay_command(&args),
        Some(Command::CheckConfig { file }) => match Config::from_file(&file) {
            Ok(config) => {
                print!("{}", config.render_toml());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ctrackd check-config: {e}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        None => {
            let env = config::env_snapshot();
            let config = match Config::load(&cli.daemon, &env) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("ctrackd: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            init_logging(&config);
            for name in config::unrecognized_env_vars(&env) {
                tracing::warn!(variable = %name, "unknown CTRACK_* environment variable ignored");
            }
            match run_daemon(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("ctrackd: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn replay_command(args: &ReplayArgs) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let result = replay::run(args, &mut out);
    let _ = out.flush();
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ctrackd replay: {}: {e}", args.file.display());
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.filter));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn run_daemon(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("ctrackd-rt")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let start_capture = ctrack_server::live::plan(&config)?;
    runtime.block_on(daemon::run(config, start_capture, shutdown_signal()))?;
    Ok(())
}

/// Completes on SIGTERM (what Kubernetes sends) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = term => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}
