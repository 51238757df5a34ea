//! `orderctl`: the operator's CLI.
//!
//! One binary for the jobs an operator runs by hand or from a Kubernetes Job:
//! the topology (migrations and topics) every deployment applies first,
//! schema migrations alone, a bulk seed for benchmarks, backfill of the read
//! models from the write model, reconciliation of the two, a rebuild of the
//! search index with swap-in, and the dead-letter topic's list and replay.
//!
//! `main` only parses, starts telemetry and hands over: the command line is
//! in [`cli`], each command's work in [`commands`] (over `orderflow-ops`),
//! what it prints in [`output`] and how it reaches the stores in [`wiring`].

use std::process::ExitCode;

use clap::Parser as _;

mod cli;
mod commands;
mod output;
mod token;
mod wiring;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = cli::Cli::parse();
    let _telemetry = orderflow_service::telemetry::init_cli("orderctl", cli.common.log_format)?;
    let format = output::Format::from_flag(cli.json);
    match commands::run(cli.command, format, wiring::interrupt_token()).await {
        Ok(code) => Ok(code),
        Err(err) => Ok(output::failed(&err)),
    }
}
