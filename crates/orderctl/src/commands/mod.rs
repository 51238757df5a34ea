//! What each subcommand does, one file per command, each over the
//! `orderflow-ops` library; [`run`] picks one.
//!
//! A command returns its exit status: success, or [`DRIFT_EXIT`] when its
//! answer is "not in order" (drift remains, an event is not visible
//! everywhere). Failures are errors: exit 1, or 4 when a dependency could
//! not be reached ([`crate::output::failed`]).

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::cli::Command;
use crate::output::{Format, NOT_IN_ORDER};

pub mod backfill;
pub mod dlq;
pub mod lag;
pub mod outbox;
pub mod rebuild;
pub mod reconcile;
pub mod seed;
pub mod setup;
pub mod status;
pub mod trace;

/// Exit status when the answer is "not in order".
pub const DRIFT_EXIT: u8 = NOT_IN_ORDER;

/// Runs `command`, printing its answer in `format`; `token` is cancelled by
/// Ctrl-C (long jobs stop between batches and say where to resume).
pub async fn run(
    command: Command,
    format: Format,
    token: CancellationToken,
) -> anyhow::Result<ExitCode> {
    match command {
        Command::Token(args) => crate::token::run(&args, format).map(|()| ExitCode::SUCCESS),
        Command::Setup(args) => setup::setup(args, format).await,
        Command::Migrate(args) => setup::migrate(args).await,
        Command::Seed(args) => seed::run(args, format, &token).await,
        Command::Backfill(args) => backfill::run(args, format, &token).await,
        Command::Reconcile(args) => reconcile::run(args, format, &token).await,
        Command::Rebuild(args) => rebuild::run(args, format, &token).await,
        Command::Trace(args) => trace::run(args, format).await,
        Command::Lag(args) => lag::run(args, format).await,
        Command::Status(args) => status::run(args, format).await,
        Command::Outbox(args) => outbox::run(args, format).await,
        Command::Dlq(args) => dlq::run(args, format, &token).await,
    }
}
