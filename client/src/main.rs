//! `ctrackctl`: the command-line client of ctrackd's gRPC API (`ctrack.v1`).
//!
//! Exit status: 0 success; 1 the operation failed (ctrackd answered with an error, or
//! `health` is not SERVING); 2 usage error or ctrackd unreachable. See `--help`.
#![forbid(unsafe_code)]

mod cli;
mod connect;
mod error;
mod format;
mod run;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    // clap prints usage errors and exits with status 2 (help and version with 0).
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        let mut command = Cli::command();
        clap_complete::generate(shell, &mut command, "ctrackctl", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let server = cli.server.clone();
    let hint = connect::hint(&cli);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ctrackctl: cannot start the async runtime: {e}");
            return ExitCode::from(error::EXIT_FAILED);
        }
    };
    match runtime.block_on(run::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(&server, hint),
    }
}
