//! `orderctl outbox list|redrive`: the outbox rows the relay parked, and
//! letting the relay try them again.

use std::process::ExitCode;

use clap::Subcommand;
use orderflow_service::stores::postgres::WriteDbArgs;

use crate::output::{self, Format};
use crate::wiring;

/// Settings of `orderctl outbox`.
#[derive(Debug, clap::Args)]
pub struct OutboxArgs {
    #[command(subcommand)]
    action: OutboxAction,
    #[command(flatten)]
    write_db: WriteDbArgs,
}

#[derive(Debug, Subcommand)]
enum OutboxAction {
    /// Print every parked row: order, version, size, why, and how many of
    /// its order's rows wait behind it.
    List,
    /// Let the relay try parked rows again (after fixing the cause, e.g.
    /// raising the topic's max.message.bytes); a row that still fails is
    /// parked again.
    Redrive {
        /// Only these outbox row ids (from `orderctl outbox list`).
        #[arg(long = "id", required_unless_present = "all")]
        ids: Vec<i64>,
        /// Every parked row.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
}

/// Lists or re-drives parked rows.
pub async fn run(args: OutboxArgs, format: Format) -> anyhow::Result<ExitCode> {
    let pool = wiring::write_pool(&args.write_db, 2).await?;
    let mut conn = pool.acquire().await?;
    match args.action {
        OutboxAction::List => {
            let rows = orderflow_outbox::parked(&mut conn).await?;
            output::parked(format, &rows);
        }
        OutboxAction::Redrive { ids, all } => {
            let ids = (!all).then_some(ids.as_slice());
            let n = orderflow_outbox::redrive(&mut conn, ids).await?;
            tracing::info!(
                rows = n,
                "orderctl.outbox redriven; the relay sends them next"
            );
            output::redriven(format, n);
        }
    }
    Ok(ExitCode::SUCCESS)
}
