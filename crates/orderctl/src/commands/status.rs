//! `orderctl status`: is everything in order? Each read model's last drift
//! check from the reconcile run records ("summary: last drift check 4 min
//! ago: 0 drift"), the outbox backlog and each projector's lag, in one
//! screen, cheap enough to run any time.

use std::process::ExitCode;

use orderflow_readstore::reconcile_runs;
use orderflow_service::stores::kafka::KafkaArgs;
use orderflow_service::stores::postgres::{ReadDbArgs, WriteDbArgs};
use time::OffsetDateTime;

use crate::cli::GroupArgs;
use crate::commands::DRIFT_EXIT;
use crate::output::{self, Format, Status};
use crate::wiring;

/// The read models, in the order reports list them.
const MODELS: [&str; 3] = ["summary", "search", "status"];

/// Settings of `orderctl status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    write_db: WriteDbArgs,
    #[command(flatten)]
    read_db: ReadDbArgs,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    groups: GroupArgs,
}

/// Prints the status; exits [`DRIFT_EXIT`] when a model's last check left
/// drift.
pub async fn run(args: StatusArgs, format: Format) -> anyhow::Result<ExitCode> {
    let read = wiring::read_pool(&args.read_db, 2).await?;
    let write = wiring::write_pool(&args.write_db, 2).await?;
    let config = wiring::kafka_config(&args.kafka).await?;
    let latest = reconcile_runs::latest_per_model(&read).await?;
    let last_run = reconcile_runs::last_run(&read).await?;
    let models: Vec<_> = MODELS
        .iter()
        .map(|m| (*m, latest.iter().find(|l| l.check.model == *m).cloned()))
        .collect();
    let backlog = orderflow_ops::lag::outbox_backlog(&write).await?;
    // A group whose lag cannot be read (no topic yet, say) is shown as
    // such: the drift checks are still worth seeing.
    let mut lags = Vec::new();
    for (_, group) in args.groups.pairs() {
        let lag = orderflow_ops::lag::group_lag(&config, &args.kafka.events_topic, &group).await;
        lags.push(lag.map_err(|e| (group, format!("{e:#}"))));
    }
    output::status(
        format,
        &Status {
            now: OffsetDateTime::now_utc(),
            models: &models,
            last_run: last_run.as_ref(),
            backlog: &backlog,
            lags: &lags,
        },
    );
    let drift = models
        .iter()
        .filter_map(|(_, l)| l.as_ref())
        .any(|l| l.check.unresolved() > 0);
    Ok(if drift {
        ExitCode::from(DRIFT_EXIT)
    } else {
        ExitCode::SUCCESS
    })
}
