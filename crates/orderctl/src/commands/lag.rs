//! `orderctl lag`: the outbox backlog and each projector's lag per
//! partition, from the committed offsets.

use std::process::ExitCode;

use orderflow_service::stores::kafka::KafkaArgs;
use orderflow_service::stores::postgres::WriteDbArgs;

use crate::cli::GroupArgs;
use crate::output::{self, Format};
use crate::wiring;

/// Settings of `orderctl lag`.
#[derive(Debug, clap::Args)]
pub struct LagArgs {
    #[command(flatten)]
    write_db: WriteDbArgs,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    groups: GroupArgs,
}

/// Prints the backlog and every group's lag.
pub async fn run(args: LagArgs, format: Format) -> anyhow::Result<ExitCode> {
    let write = wiring::write_pool(&args.write_db, 2).await?;
    let config = wiring::kafka_config(&args.kafka).await?;
    let backlog = orderflow_ops::lag::outbox_backlog(&write).await?;
    let mut lags = Vec::new();
    for (_, group) in args.groups.pairs() {
        lags.push(orderflow_ops::lag::group_lag(&config, &args.kafka.events_topic, &group).await?);
    }
    output::lag(format, &backlog, &lags);
    Ok(ExitCode::SUCCESS)
}
