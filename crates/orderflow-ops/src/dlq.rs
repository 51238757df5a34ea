//! `orderctl dlq list|replay`: see and re-drive dead-lettered events.
//!
//! A projector dead-letters an event it failed to apply N times (with why,
//! which projector, and where it came from in headers) and moves on; what
//! depends on that event is held and eventually parked. Once the cause is
//! fixed, `replay` sends each dead letter back to the events topic with its
//! original key, so it lands on the same partition: the projector that
//! failed applies it (releasing what was held behind it), and every other
//! projector's inbox recognises the event id and skips it.
//!
//! Replay reads the dead-letter topic up to where it ended when the replay
//! started, as a consumer group (`orderctl-dlq-replay` by default), and
//! commits each dead letter only after the events topic acknowledged its
//! copy: a replay that dies half-way repeats at most one event on the next
//! run, which the inboxes absorb.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use orderflow_contracts::Envelope;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::{Header, Headers as _, Message as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(30);

/// One dead letter as stored.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub partition: i32,
    pub offset: i64,
    /// The projector that gave up on it.
    pub consumer: Option<String>,
    pub reason: Option<String>,
    pub attempts: Option<u32>,
    /// What the event says of itself, when its envelope can be read.
    pub event: Option<EventInfo>,
    /// Whether the replay group has already re-driven it.
    pub replayed: bool,
}

/// The identifying part of a dead-lettered envelope.
#[derive(Debug, Clone)]
pub struct EventInfo {
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub order_id: uuid::Uuid,
    pub version: i64,
    /// The payload's schema version.
    pub schema_version: u32,
    /// Why this build cannot decode it (`orderflow_contracts::decode`, the
    /// projectors' own door), e.g. "newer schema: …" while the projectors
    /// are not upgraded yet; `None`: it decodes, so a replay will apply.
    pub decode_error: Option<String>,
}

/// What a replay did.
#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    /// Dead letters sent back to the events topic.
    pub replayed: u64,
    /// Dead letters of other projectors (with a `consumer` filter).
    pub skipped: u64,
    /// False when stopped by the token before the end.
    pub complete: bool,
}

/// Where the dead letters are and how to read them.
#[derive(Debug, Clone)]
pub struct DeadLetterTopic {
    /// Kafka client settings (brokers, client id).
    pub config: ClientConfig,
    pub topic: String,
    /// Consumer group whose committed offsets mark what was replayed. A
    /// replay limited to one projector keeps its own group,
    /// `<group>.<projector>`: committing past the other projectors' dead
    /// letters in the shared group would lose them.
    pub group: String,
}

fn header(headers: Option<&rdkafka::message::BorrowedHeaders>, name: &str) -> Option<String> {
    headers?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

impl DeadLetterTopic {
    /// This topic read with the replay group for `only` (see [`Self::group`]).
    fn for_consumer(&self, only: Option<&str>) -> Self {
        match only {
            Some(consumer) => Self {
                group: format!("{}.{consumer}", self.group),
                ..self.clone()
            },
            None => self.clone(),
        }
    }

    fn consumer(&self) -> anyhow::Result<StreamConsumer> {
        Ok(self
            .config
            .clone()
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .create()?)
    }

    /// Per partition: where the replay group stands, and where the topic
    /// ends now. Only what is below the end is read, so a walk finishes.
    async fn ranges(&self, consumer: &StreamConsumer) -> anyhow::Result<Vec<(i32, i64, i64)>> {
        Ok(crate::lag::group_positions(consumer, &self.topic)
            .with_context(|| format!("reading the dead-letter topic {}", self.topic))?
            .into_iter()
            .map(|p| (p.partition, p.committed.unwrap_or(p.low).max(p.low), p.high))
            .collect())
    }

    /// Every dead letter still on the topic (of `only` projector, when
    /// given), oldest first per partition, each marked with whether the
    /// replay group for that filter has re-driven it.
    pub async fn list(&self, only: Option<&str>) -> anyhow::Result<Vec<DeadLetter>> {
        let marks = self.ranges(&self.for_consumer(only).consumer()?).await?;
        // A group of its own for reading, which never commits.
        let reader = DeadLetterTopic {
            group: format!("{}-list", self.group),
            ..self.clone()
        }
        .consumer()?;
        let mut assignment = TopicPartitionList::new();
        let mut open: HashMap<i32, (i64, i64)> = HashMap::new();
        for (p, replayed_up_to, high) in marks {
            let (low, _) = reader.fetch_watermarks(&self.topic, p, TIMEOUT)?;
            if low < high {
                assignment.add_partition_offset(&self.topic, p, Offset::Offset(low))?;
                open.insert(p, (high, replayed_up_to));
            }
        }
        let mut letters = Vec::new();
        if open.is_empty() {
            return Ok(letters);
        }
        reader.assign(&assignment)?;
        while !open.is_empty() {
            let message = tokio::time::timeout(TIMEOUT, reader.recv())
                .await
                .context("dead-letter topic stopped answering")??;
            let (partition, offset) = (message.partition(), message.offset());
            let Some(&(high, replayed_up_to)) = open.get(&partition) else {
                continue;
            };
            if offset < high {
                letters.push(DeadLetter::read(&message, offset < replayed_up_to));
            }
            if offset + 1 >= high {
                open.remove(&partition);
            }
        }
        letters.retain(|l| only.is_none_or(|c| l.consumer.as_deref() == Some(c)));
        letters.sort_by_key(|l| (l.partition, l.offset));
        Ok(letters)
    }

    /// Sends every dead letter not yet replayed (of `only` projector, when
    /// given) back to `events_topic`, committing each after its copy is
    /// acknowledged.
    pub async fn replay(
        &self,
        events_topic: &str,
        only: Option<&str>,
        token: &CancellationToken,
    ) -> anyhow::Result<ReplayReport> {
        let this = self.for_consumer(only);
        let consumer = this.consumer()?;
        let producer: FutureProducer = self
            .config
            .clone()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .create()?;
        let ranges = this.ranges(&consumer).await?;
        let mut assignment = TopicPartitionList::new();
        let mut pending: Vec<(i32, i64)> = Vec::new();
        for (p, start, high) in &ranges {
            if start < high {
                assignment.add_partition_offset(&self.topic, *p, Offset::Offset(*start))?;
                pending.push((*p, *high));
            }
        }
        let mut report = ReplayReport::default();
        if pending.is_empty() {
            report.complete = true;
            return Ok(report);
        }
        consumer.assign(&assignment)?;
        while !pending.is_empty() {
            if token.is_cancelled() {
                return Ok(report);
            }
            let message = tokio::time::timeout(TIMEOUT, consumer.recv())
                .await
                .context("dead-letter topic stopped answering")??;
            let (partition, offset) = (message.partition(), message.offset());
            let Some(&(_, high)) = pending.iter().find(|(p, _)| *p == partition) else {
                continue;
            };
            if offset >= high {
                continue;
            }
            let letter = DeadLetter::read(&message, false);
            if only.is_some_and(|c| letter.consumer.as_deref() != Some(c)) {
                report.skipped += 1;
            } else {
                let mut headers = OwnedHeaders::new();
                if let Some(original) = message.headers() {
                    for h in original.iter().filter(|h| !h.key.starts_with("dlq_")) {
                        headers = headers.insert(Header {
                            key: h.key,
                            value: h.value,
                        });
                    }
                }
                let from = format!("{}:{partition}:{offset}", self.topic);
                headers = headers.insert(Header {
                    key: "dlq_replayed_from",
                    value: Some(from.as_str()),
                });
                let mut record: FutureRecord<'_, [u8], [u8]> =
                    FutureRecord::to(events_topic).headers(headers);
                if let Some(key) = message.key() {
                    record = record.key(key);
                }
                if let Some(payload) = message.payload() {
                    record = record.payload(payload);
                }
                producer
                    .send(record, TIMEOUT)
                    .await
                    .map_err(|(e, _)| anyhow::anyhow!("replaying to {events_topic}: {e}"))?;
                report.replayed += 1;
                tracing::info!(
                    partition,
                    offset,
                    consumer = letter.consumer.as_deref().unwrap_or("?"),
                    event = ?letter.event.as_ref().map(|e| e.event_id),
                    "orderctl.dlq replayed"
                );
            }
            let mut done = TopicPartitionList::new();
            done.add_partition_offset(&self.topic, partition, Offset::Offset(offset + 1))?;
            consumer.commit(&done, CommitMode::Sync)?;
            if offset + 1 >= high {
                pending.retain(|(p, _)| *p != partition);
            }
        }
        report.complete = true;
        Ok(report)
    }
}

impl DeadLetter {
    fn read(message: &rdkafka::message::BorrowedMessage<'_>, replayed: bool) -> Self {
        let headers = message.headers();
        let event = message
            .payload()
            .and_then(|p| serde_json::from_slice::<Envelope>(p).ok())
            .map(|e| EventInfo {
                event_id: e.event_id,
                event_type: e.event_type.clone(),
                order_id: e.aggregate_id,
                version: e.aggregate_version,
                schema_version: e.schema_version,
                decode_error: orderflow_contracts::decode(&e)
                    .err()
                    .map(|err| err.to_string()),
            });
        Self {
            partition: message.partition(),
            offset: message.offset(),
            consumer: header(headers, "dlq_consumer"),
            reason: header(headers, "dlq_reason"),
            attempts: header(headers, "dlq_attempts").and_then(|a| a.parse().ok()),
            event,
            replayed,
        }
    }
}
