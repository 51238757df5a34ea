//! `orderctl rebuild`: a read model rebuilt beside the live one and swapped
//! in without stopping anything (today the search index, from the write
//! model).

use std::process::ExitCode;

use orderflow_service::stores::postgres::{self, WriteDbArgs};
use orderflow_service::stores::search::SearchArgs;
use tokio_util::sync::CancellationToken;

/// Settings of `orderctl rebuild`.
#[derive(Debug, clap::Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    write_db: WriteDbArgs,
    #[command(flatten)]
    search: SearchArgs,
    /// Orders per batch.
    #[arg(long, default_value_t = 1000)]
    batch: i64,
    /// Keep the old index after the swap (delete it by hand later).
    #[arg(long)]
    keep_old: bool,
}

/// Rebuilds the search index under its alias.
pub async fn run(args: RebuildArgs, token: &CancellationToken) -> anyhow::Result<ExitCode> {
    let pool = postgres::pool(&args.write_db.url, 4, "orderctl")?;
    let client = args.search.client()?;
    let report = orderflow_ops::rebuild::rebuild_search(
        &pool,
        &client,
        &args.search.alias,
        args.batch,
        args.keep_old,
        token,
    )
    .await?;
    tracing::info!(
        alias = args.search.alias,
        from = ?report.from,
        to = report.to,
        resumed = report.resumed,
        filled = report.fill.search,
        fill_seconds = report.fill.elapsed.as_secs_f64(),
        changed_during_fill = report.before_swap.0,
        changed_after = report.after_swap.0,
        deleted_old = report.deleted_old,
        "orderctl.rebuild done"
    );
    Ok(ExitCode::SUCCESS)
}
