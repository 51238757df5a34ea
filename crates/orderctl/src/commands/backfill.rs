//! `orderctl backfill`: the read models filled from the write model, never
//! over a newer version, resumable after the last order a run logged.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use orderflow_ops::backfill::{self, BackfillReport};
use orderflow_ops::rebuild::progress::{Bar, Progress, Silent};
use orderflow_service::stores::postgres::WriteDbArgs;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::cli::FillArgs;
use crate::output::{self, Format};
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
pub async fn run(
    args: BackfillArgs,
    format: Format,
    token: &CancellationToken,
) -> anyhow::Result<ExitCode> {
    let pool = wiring::write_pool(&args.write_db, 4).await?;
    let report = fill(&pool, &args.fill, args.after, token).await?;
    output::backfill(format, &report);
    ensure_complete(&report)?;
    Ok(ExitCode::SUCCESS)
}

/// One backfill over the stores `fill` names (also the tail of `seed`);
/// the caller prints it, then checks [`ensure_complete`].
pub async fn fill(
    write: &sqlx::PgPool,
    fill: &FillArgs,
    after: Option<Uuid>,
    token: &CancellationToken,
) -> anyhow::Result<BackfillReport> {
    let targets = wiring::targets(fill).await?;
    // A bar with rate and ETA on a terminal; elsewhere (a Job's log) the
    // backfill's own progress lines, every ten seconds.
    let progress: Box<dyn Progress> = if std::io::stderr().is_terminal() {
        Box::new(Bar::default())
    } else {
        Box::new(Silent)
    };
    let report = backfill::backfill_with_progress(
        write,
        &targets,
        after,
        fill.batch,
        token,
        progress.as_ref(),
    )
    .await?;
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
    Ok(report)
}

/// An error saying where to resume when the backfill stopped early.
pub fn ensure_complete(report: &BackfillReport) -> anyhow::Result<()> {
    let last = report.last.map(|id| id.to_string()).unwrap_or_default();
    anyhow::ensure!(
        report.complete,
        "backfill stopped early; resume with --after {last}"
    );
    Ok(())
}
