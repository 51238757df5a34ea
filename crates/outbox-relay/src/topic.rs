//! Creating the events topic, or refusing to run against a wrong one.

use std::time::Duration;

use anyhow::{Context as _, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::types::RDKafkaErrorCode;

/// What the topic must look like.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication: i32,
    /// `retention.ms` on creation; -1 keeps events forever (replayable).
    pub retention_ms: i64,
}

/// Creates the topic when missing. An existing topic with fewer partitions
/// than configured is an error: order ids would hash differently from what
/// the deployment expects, and Kafka cannot shrink a topic back.
pub async fn ensure(config: &ClientConfig, spec: &TopicSpec) -> anyhow::Result<i32> {
    let admin: AdminClient<DefaultClientContext> =
        config.create().context("creating the Kafka admin client")?;
    let existing = partitions(config, &spec.name).await?;
    if let Some(count) = existing {
        if count < spec.partitions {
            bail!(
                "topic {} has {count} partitions but {} are configured; \
                 add partitions to the topic or lower EVENTS_TOPIC_PARTITIONS",
                spec.name,
                spec.partitions
            );
        }
        return Ok(count);
    }
    let retention = spec.retention_ms.to_string();
    let topic = NewTopic::new(
        &spec.name,
        spec.partitions,
        TopicReplication::Fixed(spec.replication),
    )
    .set("retention.ms", &retention);
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics([&topic], &options)
        .await
        .context("creating the topic")?;
    for result in results {
        match result {
            Ok(_) => {
                tracing::info!(topic = %spec.name, partitions = spec.partitions, "relay.topic created")
            }
            // Another relay created it in the meantime.
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("creating topic {name}: {code}"),
        }
    }
    Ok(spec.partitions)
}

/// Partition count of `topic`, `None` when it does not exist. The metadata
/// call blocks, so it runs off the async runtime.
async fn partitions(config: &ClientConfig, topic: &str) -> anyhow::Result<Option<i32>> {
    let config = config.clone();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config.create().context("creating a metadata client")?;
        let metadata = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .context("fetching topic metadata")?;
        Ok(metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().len() as i32))
    })
    .await
    .context("metadata task")?
}
