//! `orderctl lag`: how far behind each part of the pipeline is, from the
//! stores themselves rather than from metrics a scrape may have missed.
//!
//! The outbox backlog comes from the write database (unpublished rows, the
//! oldest one's age, parked rows). Each projector's lag comes from its
//! consumer group's committed offsets against each partition's high
//! watermark: in events, and in seconds as the age of the oldest event it
//! has not committed (the timestamp of the message at its committed
//! offset). A group that never committed stands at the low watermark, where
//! `auto.offset.reset=earliest` starts it.

use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use serde_json::{Value, json};
use sqlx::PgPool;

const TIMEOUT: Duration = Duration::from_secs(10);

/// The write side's backlog.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxBacklog {
    pub unpublished: i64,
    pub oldest_seconds: f64,
    pub parked: i64,
}

/// One partition of one consumer group.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionLag {
    pub partition: i32,
    /// The group's committed offset; `None` when it never committed.
    pub committed: Option<i64>,
    pub high_watermark: i64,
    /// Events not yet committed.
    pub events: i64,
    /// Age of the oldest of them (0 when none).
    pub seconds: f64,
}

/// One consumer group on the events topic.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupLag {
    pub group: String,
    pub partitions: Vec<PartitionLag>,
}

impl GroupLag {
    /// Events behind, over every partition.
    pub fn events(&self) -> i64 {
        self.partitions.iter().map(|p| p.events).sum()
    }

    /// The oldest uncommitted event's age, over every partition.
    pub fn seconds(&self) -> f64 {
        self.partitions
            .iter()
            .map(|p| p.seconds)
            .fold(0.0, f64::max)
    }

    /// As JSON, for `--json`.
    pub fn to_json(&self) -> Value {
        json!({
            "group": self.group,
            "events": self.events(),
            "seconds": self.seconds(),
            "partitions": self.partitions.iter().map(|p| json!({
                "partition": p.partition,
                "committed": p.committed,
                "high_watermark": p.high_watermark,
                "events": p.events,
                "seconds": p.seconds,
            })).collect::<Vec<_>>(),
        })
    }
}

/// The outbox's unpublished rows, the oldest one's age and parked rows.
pub async fn outbox_backlog(write: &PgPool) -> anyhow::Result<OutboxBacklog> {
    let mut conn = write
        .acquire()
        .await
        .context("connecting to the write database (WRITE_DATABASE_URL)")?;
    let (unpublished, oldest_seconds) = orderflow_outbox::backlog(&mut conn).await?;
    let parked = orderflow_outbox::parked_count(&mut conn).await?;
    Ok(OutboxBacklog {
        unpublished,
        oldest_seconds,
        parked,
    })
}

/// `group`'s lag on every partition of `topic`.
pub async fn group_lag(
    config: &ClientConfig,
    topic: &str,
    group: &str,
) -> anyhow::Result<GroupLag> {
    let (config, topic, group) = (config.clone(), topic.to_owned(), group.to_owned());
    tokio::task::spawn_blocking(move || group_lag_blocking(&config, &topic, &group))
        .await
        .context("lag task")?
}

fn group_lag_blocking(config: &ClientConfig, topic: &str, group: &str) -> anyhow::Result<GroupLag> {
    let consumer: BaseConsumer = config
        .clone()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .context("creating a Kafka client (KAFKA_BROKERS)")?;
    let positions = group_positions(&consumer, topic).with_context(|| {
        format!("reading the committed offsets of group {group} (KAFKA_BROKERS)")
    })?;
    let mut out = Vec::with_capacity(positions.len());
    for GroupPosition {
        partition,
        committed: stored,
        low,
        high,
    } in positions
    {
        let at = stored.unwrap_or(low).max(low);
        let events = (high - at).max(0);
        let seconds = if events > 0 {
            age_at(config, topic, partition, at).unwrap_or(0.0)
        } else {
            0.0
        };
        out.push(PartitionLag {
            partition,
            committed: stored,
            high_watermark: high,
            events,
            seconds,
        });
    }
    Ok(GroupLag {
        group: group.to_owned(),
        partitions: out,
    })
}

/// Where a consumer's group stands on one partition, and the partition's
/// watermarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GroupPosition {
    pub partition: i32,
    /// The group's committed offset; `None` when it never committed.
    pub committed: Option<i64>,
    pub low: i64,
    pub high: i64,
}

/// [`GroupPosition`] of every partition of `topic`, for the group the
/// consumer was created with (blocking calls).
pub(crate) fn group_positions<C: rdkafka::consumer::Consumer>(
    consumer: &C,
    topic: &str,
) -> anyhow::Result<Vec<GroupPosition>> {
    let metadata = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .with_context(|| format!("reading metadata of {topic}"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .with_context(|| format!("topic {topic} does not exist"))?
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    let mut wanted = TopicPartitionList::new();
    for p in &partitions {
        wanted.add_partition(topic, *p);
    }
    let committed = consumer.committed_offsets(wanted, TIMEOUT)?;
    let mut out = Vec::with_capacity(partitions.len());
    for partition in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, partition, TIMEOUT)?;
        let committed = match committed
            .find_partition(topic, partition)
            .map(|e| e.offset())
        {
            Some(Offset::Offset(o)) => Some(o),
            _ => None,
        };
        out.push(GroupPosition {
            partition,
            committed,
            low,
            high,
        });
    }
    Ok(out)
}

/// Seconds since the message at `offset` of `partition` was produced.
fn age_at(config: &ClientConfig, topic: &str, partition: i32, offset: i64) -> Option<f64> {
    // A client of its own, outside every group: reading never moves anyone.
    let reader: BaseConsumer = config
        .clone()
        .set("group.id", "orderctl-lag-reader")
        .set("enable.auto.commit", "false")
        .create()
        .ok()?;
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Offset(offset))
        .ok()?;
    reader.assign(&list).ok()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        match reader.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let millis = message.timestamp().to_millis()?;
                let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
                return Some(((now as i64 - millis).max(0)) as f64 / 1000.0);
            }
            Some(Err(_)) => return None,
            None => {}
        }
    }
    None
}
