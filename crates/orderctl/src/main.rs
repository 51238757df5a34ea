//! `orderctl`: the operator's CLI.
//!
//! One binary for the jobs an operator runs by hand or from a Kubernetes Job:
//! schema migrations, a bulk seed for benchmarks, and backfill of the read
//! models from the write model.

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use orderctl::backfill::{self, Targets};
use orderctl::seed::{self, SeedPlan};
use orderflow_service::stores::postgres::{self, ReadDbArgs, WriteDbArgs};
use orderflow_service::stores::redis::RedisArgs;
use orderflow_service::stores::search::SearchArgs;
use orderflow_service::{CommonArgs, telemetry};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(name = "orderctl", version, about)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending schema migrations to the write database.
    Migrate {
        #[command(flatten)]
        write_db: WriteDbArgs,
    },
    /// Generate orders, lines, customers and products straight into the
    /// write database, then backfill the read models with them.
    Seed {
        #[command(flatten)]
        write_db: WriteDbArgs,
        #[command(flatten)]
        plan: SeedPlan,
        /// Leave the read models alone (run `orderctl backfill` later).
        #[arg(long)]
        no_backfill: bool,
        #[command(flatten)]
        fill: FillArgs,
    },
    /// Fill the read models from the write model, never over a newer
    /// version; safe beside the live projectors and to repeat.
    Backfill {
        #[command(flatten)]
        write_db: WriteDbArgs,
        #[command(flatten)]
        fill: FillArgs,
        /// Resume after this order id (the last one a stopped run logged).
        #[arg(long)]
        after: Option<Uuid>,
    },
}

/// A read model `backfill` can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReadModel {
    Summary,
    Search,
    Status,
}

#[derive(Debug, clap::Args)]
struct FillArgs {
    #[command(flatten)]
    read_db: ReadDbArgs,
    #[command(flatten)]
    redis: RedisArgs,
    #[command(flatten)]
    search: SearchArgs,
    /// Read models to fill (default: all three).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "summary,search,status"
    )]
    only: Vec<ReadModel>,
    /// Orders per batch.
    #[arg(long, default_value_t = 1000)]
    batch: i64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = telemetry::init("orderctl", cli.common.log_format)?;
    // Ctrl-C stops a backfill between batches, with the place to resume.
    let token = CancellationToken::new();
    tokio::spawn({
        let token = token.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::warn!("orderctl interrupted; stopping after this batch");
                token.cancel();
            }
        }
    });
    match cli.command {
        Command::Migrate { write_db } => {
            let pool = migrated_write_pool(&write_db).await?;
            drop(pool);
            tracing::info!("orderctl.migrate write database is up to date");
        }
        Command::Seed {
            write_db,
            plan,
            no_backfill,
            fill,
        } => {
            let pool = migrated_write_pool(&write_db).await?;
            let report = seed::seed(&pool, &plan).await?;
            tracing::info!(
                tag = report.tag,
                orders = report.orders,
                lines = report.lines,
                customers = report.customers,
                products = report.products,
                seconds = report.elapsed.as_secs_f64(),
                "orderctl.seed done"
            );
            if !no_backfill {
                run_backfill(&pool, &fill, None, &token).await?;
            }
        }
        Command::Backfill {
            write_db,
            fill,
            after,
        } => {
            let pool = postgres::pool(&write_db.url, 4, "orderctl")?;
            run_backfill(&pool, &fill, after, &token).await?;
        }
    }
    Ok(())
}

async fn migrated_write_pool(write_db: &WriteDbArgs) -> anyhow::Result<sqlx::PgPool> {
    let pool = postgres::pool(&write_db.url, write_db.max_connections.max(4), "orderctl")?;
    order_command::MIGRATOR
        .run(&pool)
        .await
        .context("applying write-database migrations")?;
    Ok(pool)
}

async fn run_backfill(
    write: &sqlx::PgPool,
    fill: &FillArgs,
    after: Option<Uuid>,
    token: &CancellationToken,
) -> anyhow::Result<()> {
    let mut targets = Targets::default();
    if fill.only.contains(&ReadModel::Summary) {
        let read = postgres::pool(&fill.read_db.url, 4, "orderctl")?;
        orderflow_projector::MIGRATOR
            .run(&read)
            .await
            .context("applying read-database migrations")?;
        targets.summary = Some(read);
    }
    if fill.only.contains(&ReadModel::Search) {
        let client = fill.search.client()?;
        search_projector::index::ensure(&client, &fill.search.alias).await?;
        targets.search = Some(search_projector::SearchProjection {
            client,
            alias: fill.search.alias.clone(),
        });
    }
    if fill.only.contains(&ReadModel::Status) {
        targets.status = Some(status_projector::StatusProjection::new(
            fill.redis.client()?,
            fill.redis.key_prefix.clone(),
        ));
    }
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

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }
}
