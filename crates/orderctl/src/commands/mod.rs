//! What each subcommand does, one file per command, each over the
//! `orderflow-ops` library; [`run`] picks one.
//!
//! A command returns its exit status: success, or [`DRIFT_EXIT`] when its
//! answer is "not in order" (drift remains, an event is not visible
//! everywhere). Failures are errors and exit 1.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::cli::Command;

pub mod backfill;
pub mod dlq;
pub mod lag;
pub mod outbox;
pub mod rebuild;
pub mod reconcile;
pub mod seed;
pub mod setup;
pub mod trace;

/// Exit status when the answer is "not in order" (errors exit 1).
pub const DRIFT_EXIT: u8 = 3;

/// Runs `command`; `token` is cancelled by Ctrl-C (long jobs stop between
/// batches and say where to resume).
pub async fn run(command: Command, token: CancellationToken) -> anyhow::Result<ExitCode> {
    match command {
        Command::Token(args) => crate::token::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Setup(args) => setup::setup(args).await,
        Command::Migrate(args) => setup::migrate(args).await,
        Command::Seed(args) => seed::run(args, &token).await,
        Command::Backfill(args) => backfill::run(args, &token).await,
        Command::Reconcile(args) => reconcile::run(args, &token).await,
        Command::Rebuild(args) => rebuild::run(args, &token).await,
        Command::Trace(args) => trace::run(args).await,
        Command::Lag(args) => lag::run(args).await,
        Command::Outbox(args) => outbox::run(args).await,
        Command::Dlq(args) => dlq::run(args, &token).await,
    }
}
