//! `orderctl dlq list|replay`: the dead letters a projector gave up on, and
//! sending them back to the events topic once their cause is fixed.

use std::process::ExitCode;

use clap::Subcommand;
use orderflow_ops::dlq::DeadLetterTopic;
use orderflow_service::stores::kafka::KafkaArgs;
use tokio_util::sync::CancellationToken;

use crate::cli::DlqTopicArg;
use crate::output::{self, Format};
use crate::wiring;

/// Settings of `orderctl dlq`.
#[derive(Debug, clap::Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    action: DlqAction,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    dlq_topic: DlqTopicArg,
    /// Consumer group whose offsets mark what was replayed.
    #[arg(long, default_value = "orderctl-dlq-replay")]
    group: String,
    /// Only the dead letters of this projector (e.g. summary-projector).
    #[arg(long)]
    consumer: Option<String>,
}

#[derive(Debug, Subcommand)]
enum DlqAction {
    /// Print every dead letter still on the topic, with why and whether it
    /// was replayed.
    List,
    /// Send the dead letters not replayed yet back to the events topic
    /// (after fixing their cause); other projectors' inboxes skip them.
    Replay,
}

/// Lists or replays the dead letters.
pub async fn run(
    args: DlqArgs,
    format: Format,
    token: &CancellationToken,
) -> anyhow::Result<ExitCode> {
    let topic = DeadLetterTopic {
        config: wiring::kafka_config(&args.kafka).await?,
        topic: args.dlq_topic.resolve(&args.kafka),
        group: args.group,
    };
    let consumer = args.consumer.as_deref();
    match args.action {
        DlqAction::List => {
            let letters = topic.list(consumer).await?;
            output::dead_letters(format, &topic.topic, &letters);
        }
        DlqAction::Replay => {
            let events_topic = &args.kafka.events_topic;
            let report = topic.replay(events_topic, consumer, token).await?;
            tracing::info!(
                replayed = report.replayed,
                skipped = report.skipped,
                complete = report.complete,
                to = events_topic,
                "orderctl.dlq replay done"
            );
            output::replayed(format, events_topic, &report);
            anyhow::ensure!(report.complete, "replay stopped before the end");
        }
    }
    Ok(ExitCode::SUCCESS)
}
