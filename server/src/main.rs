//! `ctrackd`: the ctrack daemon's binary. For now it offers `ctrackd replay`.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ctrack_server::replay::{self, ReplayArgs};

/// ctrack: connection tracking for Linux nodes, faithful to Open vSwitch's userspace conntrack.
#[derive(Debug, Parser)]
#[command(name = "ctrackd", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Track the packets of a capture file and print each one's ct_state (OVS
    /// `test-conntrack pcap` format).
    Replay(ReplayArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Replay(args) => {
            let stdout = std::io::stdout();
            let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
            let result = replay::run(&args, &mut out);
            let _ = out.flush();
            match result {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ctrackd replay: {}: {e}", args.file.display());
                    ExitCode::FAILURE
                }
            }
        }
    }
}
