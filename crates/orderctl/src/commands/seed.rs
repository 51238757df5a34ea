//! `orderctl seed`: bulk orders straight into the write model (for
//! benchmarks and demos), then a backfill of the read models.

use std::process::ExitCode;

use orderflow_ops::seed::{self, SeedPlan};
use orderflow_service::stores::postgres::WriteDbArgs;
use tokio_util::sync::CancellationToken;

use crate::cli::FillArgs;
use crate::commands::backfill;
use crate::output::{self, Format};
use crate::wiring;

/// Settings of `orderctl seed`.
#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    #[command(flatten)]
    write_db: WriteDbArgs,
    #[command(flatten)]
    plan: SeedPlan,
    /// Leave the read models alone (run `orderctl backfill` later).
    #[arg(long)]
    no_backfill: bool,
    #[command(flatten)]
    fill: FillArgs,
}

/// Seeds, then backfills unless told not to.
pub async fn run(
    args: SeedArgs,
    format: Format,
    token: &CancellationToken,
) -> anyhow::Result<ExitCode> {
    let pool = wiring::migrated_write_pool(&args.write_db).await?;
    let report = seed::seed(&pool, &args.plan).await?;
    tracing::info!(
        tag = report.tag,
        orders = report.orders,
        lines = report.lines,
        customers = report.customers,
        products = report.products,
        seconds = report.elapsed.as_secs_f64(),
        "orderctl.seed done"
    );
    let fill = if args.no_backfill {
        None
    } else {
        Some(backfill::fill(&pool, &args.fill, None, token).await?)
    };
    output::seed(format, &report, fill.as_ref());
    if let Some(fill) = &fill {
        backfill::ensure_complete(fill)?;
    }
    Ok(ExitCode::SUCCESS)
}
