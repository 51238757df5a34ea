//! `orderctl setup` and `orderctl migrate`: the topology every deployment
//! applies before any service starts (both schemas, both topics, each
//! service's role and Redis user), and the write schema alone.

use std::process::ExitCode;

use anyhow::Context as _;
use orderflow_service::stores::kafka::KafkaArgs;
use orderflow_service::stores::postgres::{ReadDbArgs, WriteDbArgs};
use orderflow_topology::TopicSettings;

use crate::cli::DlqTopicArg;
use crate::output::{self, Format};
use crate::wiring;

/// Settings of `orderctl setup`.
#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    #[command(flatten)]
    write_db: WriteDbArgs,
    #[command(flatten)]
    read_db: ReadDbArgs,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    dlq_topic: DlqTopicArg,
    #[command(flatten)]
    topics: TopicSettings,
    #[command(flatten)]
    access: orderflow_topology::access::AccessSettings,
}

/// Settings of `orderctl migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    write_db: WriteDbArgs,
}

/// Applies migrations and topics, printing one line per part.
pub async fn setup(args: SetupArgs, format: Format) -> anyhow::Result<ExitCode> {
    let write = wiring::write_pool(&args.write_db, 2).await?;
    let read = wiring::read_pool(&args.read_db, 2).await?;
    wiring::kafka_config(&args.kafka).await?;
    let dlq_topic = args.dlq_topic.resolve(&args.kafka);
    let specs = args.topics.specs(&args.kafka.events_topic, &dlq_topic);
    let mut steps =
        orderflow_topology::apply(&write, &read, &args.kafka.client_config("orderctl"), &specs)
            .await
            .with_context(
                || "applying the topology (WRITE_DATABASE_URL, READ_DATABASE_URL, KAFKA_BROKERS)",
            )?;
    steps.extend(
        orderflow_topology::access::apply(&write, &read, &args.access)
            .await
            .context("giving each service its role (ROLE_PREFIX, *_DB_PASSWORD, REDIS_URL)")?,
    );
    output::steps(format, &steps);
    Ok(ExitCode::SUCCESS)
}

/// Applies the write database's pending migrations.
pub async fn migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let pool = wiring::migrated_write_pool(&args.write_db).await?;
    drop(pool);
    tracing::info!("orderctl.migrate write database is up to date");
    Ok(ExitCode::SUCCESS)
}
