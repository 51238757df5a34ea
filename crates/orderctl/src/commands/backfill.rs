//! `orderctl backfill`: the read models filled from the write model, never
//! over a newer version, resumable after the last order a run logged.

use std::process::ExitCode;

use orderflow_ops::backfill;
use orderflow_service::stores::postgres::{self, WriteDbArgs};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::cli::FillArgs;
use crate::wiring;

/// Settings of `orderctl backfill`.
#[derive(Debug, clap::Args)]
pub struct BackfillArgs {
    #[command(flatten)]
    write_db: WriteDbArgs,
    #[command(flatten)]
    fill: FillArgs,
    /// Resume after this order id (the last one a stopped run logged).
    #[arg(long)]
    after: Option<Uuid>,
}

/// Backfills the read models `--only` names.
pub async fn run(args: BackfillArgs, token: &CancellationToken) -> anyhow::Result<ExitCode> {
    let pool = postgres::pool(&args.write_db.url, 4, "orderctl")?;
    fill(&pool, &args.fill, args.after, token).await?;
    Ok(ExitCode::SUCCESS)
}

/// One backfill over the stores `fill` names (also the tail of `seed`).
pub async fn fill(
    write: &sqlx::PgPool,
    fill: &FillArgs,
    after: Option<Uuid>,
    token: &CancellationToken,
) -> anyhow::Result<()> {
    let targets = wiring::targets(fill).await?;
    let report = backfill::backfill(write, &targets, after, fill.batch, token).await?;
    let last = report.last.map(|id| id.to_string()).unwrap_or_default();
    tracing::info!(
        orders = report.orders,
        summary_rows = report.summary,
        search_documents = report.search,
        status_keys = report.status,
        seconds = report.elapsed.as_secs_f64(),
        last,
        complete = report.complete,
        "orderctl.backfill done"
    );
    anyhow::ensure!(
        report.complete,
        "backfill stopped early; resume with --after {last}"
    );
    Ok(())
}
