//! Replaying the events topic from its earliest offset into a rebuild's
//! copy of a read model, through the store's own projection.
//!
//! The replay is its own consumer: a consumer group `<live group>.rebuild`
//! (its committed offsets are the rebuild's progress, so a rebuild killed
//! with `kill -9` resumes where it committed) and an inbox scope
//! `<projector>.rebuild`, so the live projector's inbox, which has seen every event, never
//! makes the replay skip one. Both are dropped after the swap
//! ([`Replay::drop_scope`]). Offsets are committed only after a batch's
//! effects are durable, as the live projector does.
//!
//! An event whose predecessor the copy lacks yet (a gap: the predecessor is
//! on another partition, or later on the topic) is held, as the live
//! projector holds it, and applied again after each batch until it fits.
//! Held events live in memory, so the committed offset of a partition never
//! passes its earliest held event: after a `kill -9` the replay reads it
//! again (what it applied after it is a duplicate in its inbox scope).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use orderflow_contracts::{Envelope, decode};
use orderflow_projector::{Event, Inbox, Outcome, Projection};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::Headers as _;
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};

use tokio_util::sync::CancellationToken;

use super::KafkaSource;
use super::progress::Progress;
use crate::lag::group_positions;

/// What a replay has applied so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayCounts {
    pub events: u64,
    pub applied: u64,
    pub duplicates: u64,
    /// Events held now because the copy lacks an earlier version of their
    /// order: the swap refuses while they leave an order behind the live one.
    pub gaps: u64,
    /// Events no projection can apply (undecodable, invalid).
    pub invalid: u64,
}

/// A replay of `topic` into `projection`.
pub struct Replay<P> {
    consumer: StreamConsumer,
    config: ClientConfig,
    topic: String,
    group: String,
    projection: P,
    inbox: Inbox,
    batch: usize,
    /// The next offset to read, per partition.
    positions: BTreeMap<i32, i64>,
    /// Events held behind a gap, applied again after every batch.
    held: Vec<Event>,
    pub counts: ReplayCounts,
}

impl<P> std::fmt::Debug for Replay<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("topic", &self.topic)
            .field("group", &self.group)
            .field("positions", &self.positions)
            .finish_non_exhaustive()
    }
}

/// The committed offset of `group` on each partition of `topic` (the low
/// watermark where it never committed), and each partition's high
/// watermark.
pub async fn positions(
    config: &ClientConfig,
    topic: &str,
    group: &str,
) -> anyhow::Result<BTreeMap<i32, (i64, i64)>> {
    let (config, topic, group) = (config.clone(), topic.to_owned(), group.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: rdkafka::consumer::BaseConsumer = config
            .clone()
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()
            .context("creating a Kafka client (KAFKA_BROKERS)")?;
        let positions = group_positions(&consumer, &topic)
            .with_context(|| format!("reading the offsets of group {group} (KAFKA_BROKERS)"))?;
        Ok(positions
            .into_iter()
            .map(|p| {
                (
                    p.partition,
                    (p.committed.unwrap_or(p.low).max(p.low), p.high),
                )
            })
            .collect())
    })
    .await
    .context("offsets task")?
}

impl<P: Projection> Replay<P> {
    /// A replay as consumer group `group`, resuming where it committed
    /// (from the earliest offset when it never did).
    pub async fn open(
        config: &ClientConfig,
        topic: &str,
        group: String,
        projection: P,
        inbox: Inbox,
        batch: usize,
    ) -> anyhow::Result<Self> {
        let start = positions(config, topic, &group).await?;
        let consumer: StreamConsumer = config
            .clone()
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .context("creating the replay's Kafka consumer (KAFKA_BROKERS)")?;
        let mut assignment = TopicPartitionList::new();
        for (partition, (at, _)) in &start {
            assignment.add_partition_offset(topic, *partition, Offset::Offset(*at))?;
        }
        consumer.assign(&assignment)?;
        Ok(Self {
            consumer,
            config: config.clone(),
            topic: topic.to_owned(),
            group,
            projection,
            inbox,
            batch,
            positions: start.into_iter().map(|(p, (at, _))| (p, at)).collect(),
            held: Vec::new(),
            counts: ReplayCounts::default(),
        })
    }

    /// Opens the replay of `kafka`'s topic into `projection` with `inbox`'s
    /// scope and runs it until it has caught up with the live projector
    /// ([`replay_to_live`]): the replay, and the events it read this run.
    pub async fn caught_up(
        kafka: &KafkaSource,
        projection: P,
        inbox: Inbox,
        batch: i64,
        progress: &dyn Progress,
        token: &CancellationToken,
    ) -> anyhow::Result<(Self, u64)> {
        let mut replay = Self::open(
            &kafka.config,
            &kafka.topic,
            kafka.rebuild_group(),
            projection,
            inbox,
            usize::try_from(batch)?,
        )
        .await?;
        let start = replay.position();
        replay_to_live(&mut replay, kafka, progress, token).await?;
        let read = replay.position() - start;
        progress.finish(&format!(
            "replayed {read} events ({} applied)",
            replay.counts.applied
        ));
        Ok((replay, read))
    }

    /// Events read so far over every partition, counted from offset 0.
    pub fn position(&self) -> u64 {
        self.positions.values().map(|o| *o as u64).sum()
    }

    /// Whether the replay has read every partition up to `targets`.
    pub fn reached(&self, targets: &BTreeMap<i32, i64>) -> bool {
        targets
            .iter()
            .all(|(p, target)| self.positions.get(p).copied().unwrap_or(0) >= *target)
    }

    /// Reads and applies until every partition is at its target offset,
    /// reporting the summed position to `progress`.
    pub async fn run_until(
        &mut self,
        targets: &BTreeMap<i32, i64>,
        progress: &dyn Progress,
    ) -> anyhow::Result<()> {
        while !self.reached(targets) {
            let mut raw = Vec::with_capacity(self.batch);
            // One message, waited for; then what is already there, up to a batch.
            let first = tokio::time::timeout(Duration::from_secs(30), self.consumer.recv())
                .await
                .context("no event from Kafka within 30 s while replaying")??;
            raw.push(first.detach());
            while raw.len() < self.batch {
                match tokio::time::timeout(Duration::from_millis(20), self.consumer.recv()).await {
                    Ok(message) => raw.push(message?.detach()),
                    Err(_) => break,
                }
            }
            self.apply(raw).await?;
            progress.position(self.position());
        }
        Ok(())
    }

    async fn apply(&mut self, raw: Vec<rdkafka::message::OwnedMessage>) -> anyhow::Result<()> {
        let mut events = Vec::with_capacity(raw.len());
        for message in &raw {
            self.positions
                .insert(message.partition(), message.offset() + 1);
            match decode_message(message) {
                Some(event) => events.push(event),
                None => self.counts.invalid += 1,
            }
        }
        self.counts.events += raw.len() as u64;
        let seen = self.inbox.seen(&events).await?;
        let fresh: Vec<Event> = events
            .into_iter()
            .filter(|e| !seen.contains(&e.envelope.event_id))
            .collect();
        self.counts.duplicates += seen.len() as u64;
        self.apply_events(fresh).await?;
        // What waited for a predecessor may fit now; again while any does.
        while !self.held.is_empty() {
            let mut held = std::mem::take(&mut self.held);
            held.sort_by_key(|e| (e.order_id(), e.version()));
            if self.apply_events(held).await? == 0 {
                break;
            }
        }
        self.counts.gaps = self.held.len() as u64;
        let mut done = TopicPartitionList::new();
        for (partition, next) in &self.positions {
            let held_from = self
                .held
                .iter()
                .filter(|e| e.partition == *partition)
                .map(|e| e.offset)
                .min();
            let commit = held_from.map_or(*next, |held| held.min(*next));
            done.add_partition_offset(&self.topic, *partition, Offset::Offset(commit))?;
        }
        self.consumer
            .commit(&done, CommitMode::Sync)
            .context("committing the replay's offsets")?;
        Ok(())
    }

    /// Applies `events` to the copy, holding those behind a gap; how many
    /// were settled (applied or found to be duplicates).
    async fn apply_events(&mut self, events: Vec<Event>) -> anyhow::Result<usize> {
        if events.is_empty() {
            return Ok(0);
        }
        let outcomes = self
            .projection
            .apply(&events, &self.inbox)
            .await
            .map_err(|e| anyhow::anyhow!("applying replayed events: {e}"))?;
        let mut settled = 0;
        for (event, outcome) in events.into_iter().zip(outcomes) {
            match outcome {
                Outcome::Applied => {
                    self.counts.applied += 1;
                    settled += 1;
                }
                Outcome::Duplicate => {
                    self.counts.duplicates += 1;
                    settled += 1;
                }
                Outcome::Gap => self.held.push(event),
                Outcome::Invalid(_) => self.counts.invalid += 1,
            }
        }
        Ok(settled)
    }

    /// Deletes the replay's inbox scope and consumer group, once its copy is
    /// live (the live projector's own scope takes over from there).
    pub async fn drop_scope(self) -> anyhow::Result<()> {
        let Self {
            consumer,
            config,
            group,
            inbox,
            ..
        } = self;
        drop(consumer);
        sqlx::query("DELETE FROM inbox WHERE consumer = $1")
            .bind(inbox.consumer)
            .execute(&inbox.pool)
            .await?;
        delete_group(&config, &group).await
    }
}

/// Each partition's high watermark now.
pub async fn high_watermarks(kafka: &KafkaSource) -> anyhow::Result<BTreeMap<i32, i64>> {
    Ok(positions(&kafka.config, &kafka.topic, &kafka.live_group)
        .await?
        .into_iter()
        .map(|(p, (_, high))| (p, high))
        .collect())
}

/// Replays to the high watermarks as they are now, then on to where the
/// live projector's group has committed by then, until the replay stands at
/// or beyond it on every partition; stops between batches on `token`.
pub async fn replay_to_live<P: Projection>(
    replay: &mut Replay<P>,
    kafka: &KafkaSource,
    progress: &dyn Progress,
    token: &CancellationToken,
) -> anyhow::Result<()> {
    let high = high_watermarks(kafka).await?;
    progress.phase("replay", high.values().map(|h| *h as u64).sum());
    progress.position(replay.position());
    let mut target = high;
    loop {
        tokio::select! {
            done = replay.run_until(&target, progress) => done?,
            () = token.cancelled() => anyhow::bail!("rebuild stopped while replaying; run it again to carry on"),
        }
        target = positions(&kafka.config, &kafka.topic, &kafka.live_group)
            .await?
            .into_iter()
            .map(|(p, (committed, _))| (p, committed))
            .collect();
        if replay.reached(&target) {
            return Ok(());
        }
    }
}

/// Deletes what a stopped replay left: its inbox scope `scope` and, when
/// the rebuild reads Kafka, its consumer group (a copy discarded without
/// them would be replayed from the old group's offsets).
pub async fn discard_scope(
    read: &sqlx::PgPool,
    scope: &str,
    kafka: Option<&KafkaSource>,
) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM inbox WHERE consumer = $1")
        .bind(scope)
        .execute(read)
        .await
        .context("dropping the replay's inbox scope (READ_DATABASE_URL)")?;
    if let Some(kafka) = kafka {
        delete_group(&kafka.config, &kafka.rebuild_group()).await?;
    }
    Ok(())
}

/// Deletes consumer group `group` (a group that does not exist is fine).
pub async fn delete_group(config: &ClientConfig, group: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = config
        .create()
        .context("creating a Kafka admin client (KAFKA_BROKERS)")?;
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    // A group whose members just left can need a moment to become empty.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let results = admin.delete_groups(&[group], &options).await?;
        match results.into_iter().next() {
            Some(Err((_, rdkafka::types::RDKafkaErrorCode::NonEmptyGroup)))
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Some(Err((_, rdkafka::types::RDKafkaErrorCode::GroupIdNotFound)))
            | Some(Ok(_))
            | None => {
                return Ok(());
            }
            Some(Err((_, code))) => anyhow::bail!("deleting consumer group {group}: {code}"),
        }
    }
}

/// A replayed message as an event, or `None` when it cannot be one.
fn decode_message(message: &rdkafka::message::OwnedMessage) -> Option<Event> {
    let envelope: Envelope = serde_json::from_slice(message.payload()?).ok()?;
    let event = decode(&envelope).ok()?;
    let traceparent = message.headers().and_then(|h| {
        h.iter()
            .find(|header| header.key == "traceparent")
            .and_then(|header| header.value)
            .and_then(|v| String::from_utf8(v.to_vec()).ok())
    });
    Some(Event {
        envelope,
        event,
        partition: message.partition(),
        offset: message.offset(),
        traceparent,
    })
}
