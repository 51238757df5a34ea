//! `orderctl reconcile`: every read model compared with the write model,
//! drift reported by kind and, with `--repair`, fixed in place.

use std::process::ExitCode;

use orderflow_ops::reconcile;
use orderflow_service::config::parse_duration;
use orderflow_service::stores::postgres::{self, WriteDbArgs};
use tokio_util::sync::CancellationToken;

use crate::cli::FillArgs;
use crate::commands::DRIFT_EXIT;
use crate::{output, wiring};

/// Settings of `orderctl reconcile`.
#[derive(Debug, clap::Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    write_db: WriteDbArgs,
    #[command(flatten)]
    fill: FillArgs,
    /// Write the write model's state where a read model differs.
    #[arg(long)]
    repair: bool,
    /// Wait this long before reading suspected drift again, so events
    /// still on their way are not reported.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    recheck_after: std::time::Duration,
    /// Drifted orders to name per read model.
    #[arg(long, default_value_t = 10)]
    examples: usize,
}

/// Reconciles, prints the report, and exits [`DRIFT_EXIT`] while drift remains.
pub async fn run(args: ReconcileArgs, token: &CancellationToken) -> anyhow::Result<ExitCode> {
    let pool = postgres::pool(&args.write_db.url, 4, "orderctl")?;
    let targets = wiring::targets(&args.fill).await?;
    let options = reconcile::Options {
        batch: args.fill.batch,
        repair: args.repair,
        recheck_after: args.recheck_after,
        examples: args.examples,
    };
    let report = reconcile::reconcile(&pool, &targets, &options, token).await?;
    output::print_report(&report);
    anyhow::ensure!(report.complete, "reconcile stopped before the end");
    if report.unresolved() > 0 {
        // An answer, not a failure of the tool: no backtrace.
        tracing::error!(
            drifted = report.unresolved(),
            repair = args.repair,
            "orderctl.reconcile drift remains{}",
            if args.repair {
                ""
            } else {
                "; --repair fixes it"
            }
        );
        return Ok(ExitCode::from(DRIFT_EXIT));
    }
    Ok(ExitCode::SUCCESS)
}
