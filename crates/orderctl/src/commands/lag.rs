//! `orderctl lag`: the outbox backlog and each projector's lag per
//! partition, from the committed offsets.

use std::process::ExitCode;

use orderflow_service::stores::kafka::KafkaArgs;
use orderflow_service::stores::postgres::{self, WriteDbArgs};

use crate::cli::GroupArgs;
use crate::output;

/// Settings of `orderctl lag`.
#[derive(Debug, clap::Args)]
pub struct LagArgs {
    #[command(flatten)]
    write_db: WriteDbArgs,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    groups: GroupArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Prints the backlog and every group's lag.
pub async fn run(args: LagArgs) -> anyhow::Result<ExitCode> {
    let write = postgres::pool(&args.write_db.url, 2, "orderctl")?;
    let backlog = orderflow_ops::lag::outbox_backlog(&write).await?;
    let config = args.kafka.client_config("orderctl");
    let mut lags = Vec::new();
    for (_, group) in args.groups.pairs() {
        lags.push(orderflow_ops::lag::group_lag(&config, &args.kafka.events_topic, &group).await?);
    }
    if args.json {
        output::print_json(&serde_json::json!({
            "outbox": {"unpublished": backlog.unpublished, "oldest_seconds": backlog.oldest_seconds, "parked": backlog.parked},
            "groups": lags.iter().map(orderflow_ops::lag::GroupLag::to_json).collect::<Vec<_>>(),
        }));
    } else {
        output::print_lag(&backlog, &lags);
    }
    Ok(ExitCode::SUCCESS)
}
