//! The Kafka topics: the events topic other teams subscribe to, and the
//! dead-letter topic the projectors write what they can never apply to.

use std::time::Duration;

use orderflow_service::stores::kafka::topic_partitions;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::{Error, Result, Step};

/// How long one metadata or admin call may take.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(30);

/// Partitions, replication and retention of the topics, from settings.
#[derive(Debug, Clone, clap::Args)]
pub struct TopicSettings {
    /// Partitions of the events topic: the most projector replicas that can
    /// share the work. Kafka cannot shrink a topic, and order ids hash to
    /// partitions by this count.
    #[arg(long, env = "EVENTS_TOPIC_PARTITIONS", default_value_t = 6)]
    pub partitions: i32,
    /// Replication factor of both topics (3 on a production cluster).
    #[arg(long, env = "EVENTS_TOPIC_REPLICATION", default_value_t = 1)]
    pub replication: i32,
    /// `retention.ms` of the events topic; -1 keeps events forever, so read
    /// models can be rebuilt by replay.
    #[arg(long, env = "EVENTS_TOPIC_RETENTION_MS", default_value_t = -1, allow_hyphen_values = true)]
    pub retention_ms: i64,
    /// `max.message.bytes` of the events topic (the broker's default when
    /// unset). The relay parks a row over it instead of retrying it forever.
    #[arg(long, env = "EVENTS_TOPIC_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: Option<i64>,
    /// Partitions of the dead-letter topic.
    #[arg(long, env = "DLQ_TOPIC_PARTITIONS", default_value_t = 1)]
    pub dlq_partitions: i32,
    /// `retention.ms` of the dead-letter topic; -1 keeps dead letters until
    /// someone has looked at them.
    #[arg(long, env = "DLQ_TOPIC_RETENTION_MS", default_value_t = -1, allow_hyphen_values = true)]
    pub dlq_retention_ms: i64,
}

impl Default for TopicSettings {
    fn default() -> Self {
        Self {
            partitions: 6,
            replication: 1,
            retention_ms: -1,
            max_message_bytes: None,
            dlq_partitions: 1,
            dlq_retention_ms: -1,
        }
    }
}

impl TopicSettings {
    /// The events topic and its dead-letter topic.
    pub fn specs(&self, events_topic: &str, dlq_topic: &str) -> Vec<TopicSpec> {
        vec![
            TopicSpec {
                name: events_topic.to_owned(),
                partitions: self.partitions,
                replication: self.replication,
                retention_ms: self.retention_ms,
                max_message_bytes: self.max_message_bytes,
            },
            TopicSpec {
                name: dlq_topic.to_owned(),
                partitions: self.dlq_partitions,
                replication: self.replication,
                retention_ms: self.dlq_retention_ms,
                // A dead letter carries the event it could not apply.
                max_message_bytes: self.max_message_bytes,
            },
        ]
    }
}

/// What one topic must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication: i32,
    /// `retention.ms` on creation; -1 keeps messages forever.
    pub retention_ms: i64,
    /// `max.message.bytes` on creation; `None` keeps the broker's default.
    pub max_message_bytes: Option<i64>,
}

/// What `ensure` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicState {
    Created,
    Exists { partitions: i32 },
}

/// Creates each topic that is missing; refuses one with too few partitions.
pub async fn ensure_all(config: &ClientConfig, specs: &[TopicSpec]) -> Result<Vec<Step>> {
    let mut steps = Vec::with_capacity(specs.len());
    for spec in specs {
        let state = ensure(config, spec).await?;
        steps.push(Step::Topic {
            spec: spec.clone(),
            state,
        });
    }
    Ok(steps)
}

/// Creates the topic when missing. An existing topic with fewer partitions
/// than configured is an error: order ids would hash differently from what
/// the deployment expects, and Kafka cannot shrink a topic back. Settings
/// of an existing topic are left as they are (changing retention is an
/// operator's decision, not a side effect of a deployment).
pub async fn ensure(config: &ClientConfig, spec: &TopicSpec) -> Result<TopicState> {
    if let Some(actual) = topic_partitions(config, &spec.name, KAFKA_TIMEOUT)
        .await
        .map_err(Error::Kafka)?
    {
        if actual < spec.partitions {
            return Err(Error::TooFewPartitions {
                topic: spec.name.clone(),
                actual,
                wanted: spec.partitions,
            });
        }
        return Ok(TopicState::Exists { partitions: actual });
    }
    let admin: AdminClient<DefaultClientContext> = config
        .create()
        .map_err(|e| Error::Kafka(format!("creating the admin client: {e}")))?;
    let retention = spec.retention_ms.to_string();
    let max_bytes = spec.max_message_bytes.map(|b| b.to_string());
    let mut topic = NewTopic::new(
        &spec.name,
        spec.partitions,
        TopicReplication::Fixed(spec.replication),
    )
    .set("retention.ms", &retention);
    if let Some(max_bytes) = &max_bytes {
        topic = topic.set("max.message.bytes", max_bytes);
    }
    let options = AdminOptions::new().operation_timeout(Some(KAFKA_TIMEOUT));
    let results = tokio::time::timeout(KAFKA_TIMEOUT * 2, admin.create_topics([&topic], &options))
        .await
        .map_err(|_| Error::Kafka(format!("creating topic {}: timed out", spec.name)))?
        .map_err(|e| Error::Kafka(format!("creating topic {}: {e}", spec.name)))?;
    for result in results {
        match result {
            Ok(_) => {
                tracing::info!(topic = %spec.name, partitions = spec.partitions, "topology.topic created");
            }
            // Another setup run created it in the meantime: check it again.
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {
                return Box::pin(ensure(config, spec)).await;
            }
            Err((name, code)) => {
                return Err(Error::Kafka(format!("creating topic {name}: {code}")));
            }
        }
    }
    Ok(TopicState::Created)
}
