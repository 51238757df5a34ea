//! `orderctl reconcile`: every read model compared with the write model,
//! drift reported by kind and, with `--repair`, fixed in place.
//!
//! Each run is a job with a record: it is entered in the read database when
//! it starts and completed with its findings (or its error) when it ends,
//! so `orderctl status` and the query service's drift metrics know when
//! drift was last looked for and what was found.

use std::process::ExitCode;

use orderflow_ops::rebuild::progress;
use orderflow_ops::reconcile::{self, Drift, ReconcileReport};
use orderflow_readstore::reconcile_runs::{self, Example, KINDS, ModelCheck};
use orderflow_service::config::parse_duration;
use orderflow_service::stores::postgres::WriteDbArgs;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::cli::FillArgs;
use crate::commands::DRIFT_EXIT;
use crate::output::{self, Format, Reconciled};
use crate::wiring;

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

/// Reconciles, records and prints the run, and exits [`DRIFT_EXIT`] while
/// drift remains.
pub async fn run(
    args: ReconcileArgs,
    format: Format,
    token: &CancellationToken,
) -> anyhow::Result<ExitCode> {
    let write = wiring::write_pool(&args.write_db, 4).await?;
    // The record lives in the read database, whichever models are checked.
    let read = wiring::migrated_read_pool(&args.fill.read_db).await?;
    let targets = wiring::targets(&args.fill).await?;
    let options = reconcile::Options {
        batch: args.fill.batch,
        repair: args.repair,
        recheck_after: args.recheck_after,
        examples: args.examples,
    };
    let started_at = OffsetDateTime::now_utc();
    let run_id = reconcile_runs::start(&read, args.repair).await?;
    // A bar with rate and ETA on a terminal, plain lines elsewhere.
    let progress = progress::for_stderr();
    let report = match reconcile::reconcile_with_progress(
        &write,
        &targets,
        &options,
        token,
        progress.as_ref(),
    )
    .await
    {
        Ok(report) => report,
        Err(err) => {
            let why = format!("{err:#}");
            if let Err(e) =
                reconcile_runs::finish(&read, run_id, false, None, Some(&why), &[]).await
            {
                tracing::warn!(error = %e, run_id, "orderctl.reconcile could not record the failure");
            }
            return Err(err);
        }
    };
    let models = checks(&report);
    let orders = i64::try_from(report.orders).unwrap_or(i64::MAX);
    let stopped = (!report.complete).then_some("stopped before the end");
    reconcile_runs::finish(
        &read,
        run_id,
        report.complete,
        Some(orders),
        stopped,
        &models,
    )
    .await?;
    output::reconcile(
        format,
        &Reconciled {
            run_id,
            started_at,
            finished_at: OffsetDateTime::now_utc(),
            repair: args.repair,
            complete: report.complete,
            orders: report.orders,
            seconds: report.elapsed.as_secs_f64(),
            models: &models,
        },
    );
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

/// The report as the run record keeps it: every kind present, counts as i64.
fn checks(report: &ReconcileReport) -> Vec<ModelCheck> {
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    report
        .stores()
        .map(|(name, store)| ModelCheck {
            model: name.to_owned(),
            checked: count(store.checked),
            drift: KINDS
                .iter()
                .map(|kind| {
                    let n = store
                        .drift
                        .iter()
                        .find(|(d, _)| d.as_str() == *kind)
                        .map_or(0, |(_, n)| *n);
                    ((*kind).to_owned(), count(n))
                })
                .collect(),
            examples: store
                .examples
                .iter()
                .map(|(order_id, drift): &(_, Drift)| Example {
                    order_id: *order_id,
                    kind: drift.as_str().to_owned(),
                })
                .collect(),
            repaired: count(store.repaired),
            unrepaired: count(store.unrepaired),
        })
        .collect()
}
