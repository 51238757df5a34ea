//! `orderctl`: the operator's CLI.
//!
//! One binary for the jobs an operator runs by hand or from a Kubernetes Job:
//! schema migrations now; reconcile, rebuild, trace, dead-letter replay and
//! lag as the read models land.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use orderflow_service::stores::postgres::{self, WriteDbArgs};
use orderflow_service::{CommonArgs, telemetry};

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = telemetry::init("orderctl", cli.common.log_format)?;
    match cli.command {
        Command::Migrate { write_db } => {
            let pool = postgres::pool(&write_db.url, 2, "orderctl")?;
            order_command::MIGRATOR
                .run(&pool)
                .await
                .context("applying write-database migrations")?;
            tracing::info!("orderctl.migrate write database is up to date");
        }
    }
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
