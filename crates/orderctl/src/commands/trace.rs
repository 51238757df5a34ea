//! `orderctl trace <order|event>`: where an event is, across every hop and
//! store, with a verdict on top.

use std::process::ExitCode;

use orderflow_ops::dlq::DeadLetterTopic;
use orderflow_service::stores::kafka::KafkaArgs;
use orderflow_service::stores::postgres::{ReadDbArgs, WriteDbArgs};
use orderflow_service::stores::redis::RedisArgs;
use orderflow_service::stores::search::SearchArgs;
use uuid::Uuid;

use crate::cli::{DlqTopicArg, GroupArgs};
use crate::commands::DRIFT_EXIT;
use crate::output::{self, Format};
use crate::wiring;

/// Settings of `orderctl trace`.
#[derive(Debug, clap::Args)]
pub struct TraceArgs {
    /// An order id or an event id.
    id: Uuid,
    #[command(flatten)]
    write_db: WriteDbArgs,
    #[command(flatten)]
    read_db: ReadDbArgs,
    #[command(flatten)]
    redis: RedisArgs,
    #[command(flatten)]
    search: SearchArgs,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    dlq_topic: DlqTopicArg,
    #[command(flatten)]
    groups: GroupArgs,
}

/// Traces one id; exits [`DRIFT_EXIT`] unless it is visible everywhere.
pub async fn run(args: TraceArgs, format: Format) -> anyhow::Result<ExitCode> {
    // Every store reached at once: one after the other, the five
    // connections were most of an operator's wait.
    let (write, read, search, redis, config) = tokio::try_join!(
        wiring::write_pool(&args.write_db, 2),
        wiring::read_pool(&args.read_db, 2),
        wiring::search_client(&args.search),
        wiring::redis_client(&args.redis),
        wiring::kafka_config(&args.kafka),
    )?;
    let search = orderflow_readstore::search::SearchProjection {
        client: search,
        alias: args.search.alias.clone(),
    };
    let status =
        orderflow_readstore::status::StatusProjection::new(redis, args.redis.key_prefix.clone());
    let dead_letters = DeadLetterTopic {
        config: config.clone(),
        topic: args.dlq_topic.resolve(&args.kafka),
        group: "orderctl-dlq-replay".to_owned(),
    };
    let projectors = args.groups.pairs();
    let sources = orderflow_ops::trace::Sources {
        write: &write,
        read: &read,
        search: &search,
        status: &status,
        kafka: &config,
        events_topic: &args.kafka.events_topic,
        dead_letters: &dead_letters,
        projectors: &projectors,
    };
    let trace = orderflow_ops::trace::trace(&sources, args.id).await?;
    let done = trace.verdict.starts_with("visible everywhere")
        || trace.verdict.starts_with("processed by every projector");
    output::trace(format, &trace, done);
    Ok(if done {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(DRIFT_EXIT)
    })
}
