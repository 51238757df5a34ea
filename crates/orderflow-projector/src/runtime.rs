//! The consumer loop that drives a [`Projection`].

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use orderflow_contracts::{Envelope, decode};
use orderflow_service::config::parse_duration;
use orderflow_service::stores::kafka::KafkaArgs;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers as _};
use rdkafka::{Message as _, Offset, TopicPartitionList};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::dlq::{DeadLetters, RawMessage};
use crate::held::Held;
use crate::{ApplyError, Event, Inbox, Outcome, Projection};

/// Tuning of the consumer loop.
#[derive(Debug, Clone, clap::Args)]
pub struct RuntimeSettings {
    /// Consumer group; defaults to the projector's name.
    #[arg(long = "consumer-group", env = "CONSUMER_GROUP")]
    pub group: Option<String>,
    /// Dead-letter topic; defaults to `<events topic>.dlq`.
    #[arg(long = "dlq-topic", env = "DLQ_TOPIC")]
    pub dlq_topic: Option<String>,
    /// Most events applied per batch.
    #[arg(
        long = "batch-size",
        env = "PROJECTOR_BATCH_SIZE",
        default_value_t = 500
    )]
    pub batch_size: usize,
    /// How long a batch waits to fill once its first event arrived.
    #[arg(long = "batch-wait", env = "PROJECTOR_BATCH_WAIT", default_value = "20ms", value_parser = parse_duration)]
    pub batch_wait: Duration,
    /// Attempts at an event the store refuses before it is dead-lettered.
    #[arg(
        long = "max-attempts",
        env = "PROJECTOR_MAX_ATTEMPTS",
        default_value_t = 5
    )]
    pub max_attempts: u32,
    /// How long an event may wait for an earlier version before it is parked.
    #[arg(long = "gap-timeout", env = "PROJECTOR_GAP_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub gap_timeout: Duration,
    /// How often held events are retried.
    #[arg(long = "held-retry", env = "PROJECTOR_HELD_RETRY", default_value = "1s", value_parser = parse_duration)]
    pub held_retry: Duration,
    /// Deduplicate through the inbox. Only for measuring its cost: without
    /// it a redelivered event is still caught by the version guard, but an
    /// event id reused for a different version would not be.
    #[arg(long = "inbox", env = "PROJECTOR_INBOX", default_value_t = true, action = clap::ArgAction::Set)]
    pub inbox: bool,
    /// Longest pause between retries of a store that is down.
    #[arg(long = "max-backoff", env = "PROJECTOR_MAX_BACKOFF", default_value = "5s", value_parser = parse_duration)]
    pub max_backoff: Duration,
}

/// Last transient failure, shown by `/readyz` while the store is down.
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<Mutex<Option<String>>>);

impl Health {
    fn set(&self, problem: Option<String>) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = problem;
        }
    }

    /// `Err(reason)` while the projector is retrying a store failure.
    pub fn check(&self) -> Result<(), String> {
        match self.0.lock().map(|s| s.clone()) {
            Ok(None) => Ok(()),
            Ok(Some(problem)) => Err(problem),
            Err(_) => Err("health state poisoned".into()),
        }
    }
}

/// A projection driven by a Kafka consumer group.
pub struct Runtime<P> {
    projection: Arc<P>,
    consumer: Arc<StreamConsumer>,
    topic: String,
    inbox: Inbox,
    held: Held,
    dlq: DeadLetters,
    settings: RuntimeSettings,
    health: Health,
    /// Consecutive transient failures, for the backoff.
    failures: std::sync::atomic::AtomicU32,
}

impl<P> std::fmt::Debug for Runtime<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("topic", &self.topic)
            .field("consumer", &self.inbox.consumer)
            .finish()
    }
}

impl<P: Projection> Runtime<P> {
    /// Sets up the consumer and the dead-letter producer.
    pub fn new(
        projection: P,
        pool: PgPool,
        kafka: &KafkaArgs,
        settings: RuntimeSettings,
    ) -> anyhow::Result<Self> {
        let name = projection.name();
        let group = settings.group.clone().unwrap_or_else(|| name.to_owned());
        let consumer: StreamConsumer = kafka
            .client_config(name)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .create()
            .context("creating the Kafka consumer")?;
        let dlq_topic = settings
            .dlq_topic
            .clone()
            .unwrap_or_else(|| format!("{}.dlq", kafka.events_topic));
        let dlq = DeadLetters::new(kafka.client_config(name), dlq_topic, name)?;
        Ok(Self {
            projection: Arc::new(projection),
            consumer: Arc::new(consumer),
            topic: kafka.events_topic.clone(),
            inbox: Inbox {
                consumer: name,
                pool: pool.clone(),
                enabled: settings.inbox,
            },
            held: Held {
                consumer: name,
                pool,
            },
            dlq,
            settings,
            health: Health::default(),
            failures: std::sync::atomic::AtomicU32::new(0),
        })
    }

    /// The health flag behind the `projector` readiness check.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// Consumes until `token` is cancelled; the batch in hand is finished
    /// and committed first.
    pub async fn run(self, token: CancellationToken) -> anyhow::Result<()> {
        self.consumer
            .subscribe(&[&self.topic])
            .context("subscribing")?;
        let name = self.projection.name();
        tracing::info!(projector = name, topic = %self.topic, "projector.start consuming");
        let mut last_sweep = Instant::now();
        let mut last_lag = Instant::now();
        loop {
            let batch = tokio::select! {
                () = token.cancelled() => break,
                batch = self.next_batch() => batch,
            };
            if batch.is_empty() {
                // Nothing is failing while idle; the store probes in
                // /readyz still report an outage of the store itself.
                self.healthy();
            } else {
                if !self.process(&batch, &token).await? {
                    break;
                }
                self.commit(&batch);
            }
            if last_sweep.elapsed() >= self.settings.held_retry {
                last_sweep = Instant::now();
                if let Err(err) = self.sweep_held(&token).await {
                    tracing::warn!(projector = name, error = %err, "projector.held sweep failed");
                }
            }
            if last_lag.elapsed() >= Duration::from_secs(5) {
                last_lag = Instant::now();
                self.report_lag().await;
            }
        }
        tracing::info!(projector = name, "projector.stop");
        Ok(())
    }

    /// Waits up to `held_retry` for a first message, then fills the batch
    /// for up to `batch_wait`.
    async fn next_batch(&self) -> Vec<RawMessage> {
        let mut batch = Vec::new();
        match tokio::time::timeout(self.settings.held_retry, self.consumer.recv()).await {
            Ok(Ok(message)) => batch.push(raw(&message)),
            Ok(Err(err)) => {
                tracing::warn!(projector = self.projection.name(), error = %err, "projector.consume error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                return batch;
            }
            Err(_) => return batch,
        }
        let deadline = tokio::time::Instant::now() + self.settings.batch_wait;
        while batch.len() < self.settings.batch_size {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(message)) => batch.push(raw(&message)),
                _ => break,
            }
        }
        batch
    }

    /// Applies a batch; false when cancelled before its effects were durable.
    async fn process(
        &self,
        batch: &[RawMessage],
        token: &CancellationToken,
    ) -> anyhow::Result<bool> {
        let name = self.projection.name();
        let mut events = Vec::with_capacity(batch.len());
        for message in batch {
            match decode_message(message) {
                Ok(event) => events.push(event),
                Err(reason) => {
                    if !self.dead_letter(message, &reason, 1, token).await {
                        return Ok(false);
                    }
                }
            }
        }
        let seen = loop {
            match self.inbox.seen(&events).await {
                Ok(seen) => break seen,
                Err(err) => {
                    if !self.transient(&format!("inbox: {err}"), token).await {
                        return Ok(false);
                    }
                }
            }
        };
        if !seen.is_empty() {
            metrics::counter!("projector_events_total", "projector" => name, "outcome" => "duplicate")
                .increment(seen.len() as u64);
        }
        let fresh: Vec<Event> = events
            .into_iter()
            .filter(|e| !seen.contains(&e.envelope.event_id))
            .collect();
        let Some(outcomes) = self.apply(&fresh, token).await else {
            return Ok(false);
        };
        let advanced = self.settle(&fresh, &outcomes, token).await?;
        if !advanced.is_empty() {
            self.retry_held(Some(&advanced), token).await?;
        }
        Ok(true)
    }

    /// Applies events, retrying transient failures with backoff and
    /// isolating refused events. `None` when cancelled.
    async fn apply(&self, events: &[Event], token: &CancellationToken) -> Option<Vec<Outcome>> {
        if events.is_empty() {
            return Some(Vec::new());
        }
        loop {
            match self.projection.apply(events, &self.inbox).await {
                Ok(outcomes) => {
                    self.healthy();
                    return Some(outcomes);
                }
                Err(ApplyError::Transient(err)) => {
                    if !self.transient(&err, token).await {
                        return None;
                    }
                }
                Err(ApplyError::Refused(err)) => {
                    tracing::warn!(projector = self.projection.name(), error = %err, "projector.apply batch refused; isolating");
                    return self.apply_one_by_one(events, token).await;
                }
            }
        }
    }

    /// Applies events one at a time, so one that the store keeps refusing
    /// can be dead-lettered without holding up the rest.
    async fn apply_one_by_one(
        &self,
        events: &[Event],
        token: &CancellationToken,
    ) -> Option<Vec<Outcome>> {
        let mut outcomes = Vec::with_capacity(events.len());
        for event in events {
            let mut attempts = 0;
            let outcome = loop {
                attempts += 1;
                match self
                    .projection
                    .apply(std::slice::from_ref(event), &self.inbox)
                    .await
                {
                    Ok(mut one) => break one.pop().unwrap_or(Outcome::Duplicate),
                    Err(ApplyError::Transient(err)) => {
                        attempts -= 1;
                        if !self.transient(&err, token).await {
                            return None;
                        }
                    }
                    Err(ApplyError::Refused(err)) if attempts >= self.settings.max_attempts => {
                        break Outcome::Invalid(format!("refused {attempts} times: {err}"));
                    }
                    Err(ApplyError::Refused(_)) => {
                        tokio::time::sleep(backoff(attempts, self.settings.max_backoff)).await;
                    }
                }
            };
            outcomes.push(outcome);
        }
        self.healthy();
        Some(outcomes)
    }

    /// Counts outcomes, holds gaps, dead-letters the invalid. Returns the
    /// orders that advanced.
    async fn settle(
        &self,
        events: &[Event],
        outcomes: &[Outcome],
        token: &CancellationToken,
    ) -> anyhow::Result<HashSet<Uuid>> {
        let name = self.projection.name();
        let mut advanced = HashSet::new();
        let mut gaps = Vec::new();
        let now = time::OffsetDateTime::now_utc();
        for (event, outcome) in events.iter().zip(outcomes) {
            let label = match outcome {
                Outcome::Applied => {
                    advanced.insert(event.order_id());
                    let latency = (now - event.envelope.occurred_at).as_seconds_f64().max(0.0);
                    metrics::histogram!("projector_commit_to_visible_seconds", "projector" => name)
                        .record(latency);
                    "applied"
                }
                Outcome::Duplicate => "duplicate",
                Outcome::Gap => {
                    gaps.push(event);
                    "held"
                }
                Outcome::Invalid(reason) => {
                    let message = envelope_message(event);
                    if !self
                        .dead_letter(&message, reason, self.settings.max_attempts, token)
                        .await
                    {
                        anyhow::bail!("cancelled while dead-lettering");
                    }
                    "dead_lettered"
                }
            };
            metrics::counter!("projector_events_total", "projector" => name, "outcome" => label)
                .increment(1);
        }
        if !gaps.is_empty() {
            loop {
                match self
                    .held
                    .hold(
                        &gaps,
                        "an earlier version of the order has not been applied",
                    )
                    .await
                {
                    Ok(()) => break,
                    Err(err) => {
                        if !self
                            .transient(&format!("holding events: {err}"), token)
                            .await
                        {
                            anyhow::bail!("cancelled while holding events");
                        }
                    }
                }
            }
        }
        Ok(advanced)
    }

    /// Retries held events (of `orders`, or all of them), until no more
    /// apply.
    async fn retry_held(
        &self,
        orders: Option<&HashSet<Uuid>>,
        token: &CancellationToken,
    ) -> anyhow::Result<()> {
        loop {
            let fetched = match orders {
                Some(orders) => self.held.for_orders(orders).await,
                None => self.held.all(1000).await,
            };
            // A database hiccup here backs off like any store error rather
            // than ending the projector; the held rows stay for next time.
            let envelopes = match fetched {
                Ok(envelopes) => envelopes,
                Err(err) => {
                    if self.transient(&format!("held events: {err}"), token).await {
                        continue;
                    }
                    return Ok(());
                }
            };
            if envelopes.is_empty() {
                return Ok(());
            }
            let events: Vec<Event> = envelopes
                .into_iter()
                .filter_map(|envelope| {
                    let event = decode(&envelope).ok()?;
                    Some(Event {
                        envelope,
                        event,
                        partition: -1,
                        offset: -1,
                    })
                })
                .collect();
            let Some(outcomes) = self.apply(&events, token).await else {
                return Ok(());
            };
            let mut released = Vec::new();
            let mut progressed = false;
            for (event, outcome) in events.iter().zip(&outcomes) {
                match outcome {
                    Outcome::Applied => {
                        progressed = true;
                        released.push(event.envelope.event_id);
                        metrics::counter!("projector_events_total", "projector" => self.projection.name(), "outcome" => "applied")
                            .increment(1);
                    }
                    Outcome::Duplicate => released.push(event.envelope.event_id),
                    Outcome::Gap => {}
                    Outcome::Invalid(reason) => {
                        let message = envelope_message(event);
                        if self
                            .dead_letter(&message, reason, self.settings.max_attempts, token)
                            .await
                        {
                            released.push(event.envelope.event_id);
                        }
                    }
                }
            }
            // Unreleased rows are retried later and then found duplicates.
            while let Err(err) = self.held.release(&released).await {
                if !self
                    .transient(&format!("releasing held events: {err}"), token)
                    .await
                {
                    return Ok(());
                }
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    /// The timer: retry every held event, park the overdue, report counts.
    async fn sweep_held(&self, token: &CancellationToken) -> anyhow::Result<()> {
        let name = self.projection.name();
        self.retry_held(None, token).await?;
        let parked = self.held.park_overdue(self.settings.gap_timeout).await?;
        if parked > 0 {
            metrics::counter!("projector_events_total", "projector" => name, "outcome" => "parked")
                .increment(parked);
            tracing::error!(
                projector = name,
                parked,
                "projector.held events parked: a gap stayed open past the bound"
            );
        }
        let (held, parked_total) = self.held.counts().await?;
        metrics::gauge!("projector_held_events", "projector" => name, "state" => "held")
            .set(held as f64);
        metrics::gauge!("projector_held_events", "projector" => name, "state" => "parked")
            .set(parked_total as f64);
        Ok(())
    }

    /// Marks the projector not ready, waits, and says whether to go on.
    async fn transient(&self, problem: &str, token: &CancellationToken) -> bool {
        let attempt = self
            .failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .min(16)
            + 1;
        self.health.set(Some(problem.to_owned()));
        metrics::counter!("projector_store_errors_total", "projector" => self.projection.name())
            .increment(1);
        tracing::warn!(
            projector = self.projection.name(),
            problem,
            "projector.store unavailable; retrying"
        );
        let wait = backoff(attempt, self.settings.max_backoff);
        tokio::select! {
            () = token.cancelled() => false,
            () = tokio::time::sleep(wait) => true,
        }
    }

    /// The store answered again: ready, and the backoff starts over.
    fn healthy(&self) {
        self.health.set(None);
        self.failures.store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// Dead-letters `message`, retrying while Kafka is down; false when cancelled.
    async fn dead_letter(
        &self,
        message: &RawMessage,
        reason: &str,
        attempts: u32,
        token: &CancellationToken,
    ) -> bool {
        loop {
            match self.dlq.send(message, reason, attempts).await {
                Ok(()) => return true,
                Err(err) => {
                    if !self
                        .transient(&format!("dead-letter topic: {err:#}"), token)
                        .await
                    {
                        return false;
                    }
                }
            }
        }
    }

    /// Commits the next offset of every partition in the batch. Asynchronous:
    /// a commit lost to a crash or a rebalance only means redelivery, which
    /// the inbox absorbs.
    fn commit(&self, batch: &[RawMessage]) {
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for message in batch {
            let entry = next.entry(message.partition).or_insert(0);
            *entry = (*entry).max(message.offset + 1);
        }
        let mut list = TopicPartitionList::new();
        for (partition, offset) in next {
            if let Err(err) =
                list.add_partition_offset(&self.topic, partition, Offset::Offset(offset))
            {
                tracing::warn!(error = %err, "projector.commit bad offset");
            }
        }
        if let Err(err) = self.consumer.commit(&list, CommitMode::Async) {
            tracing::warn!(projector = self.projection.name(), error = %err, "projector.commit failed; the batch may be redelivered");
        }
    }

    /// Consumer lag per assigned partition: high watermark minus position.
    async fn report_lag(&self) {
        let consumer = self.consumer.clone();
        let topic = self.topic.clone();
        let name = self.projection.name();
        let _ = tokio::task::spawn_blocking(move || {
            let Ok(positions) = consumer.position() else { return };
            for element in positions.elements_for_topic(&topic) {
                let Ok((_, high)) = consumer.fetch_watermarks(&topic, element.partition(), Duration::from_secs(1)) else {
                    continue;
                };
                let position = match element.offset() {
                    Offset::Offset(o) => o,
                    _ => continue,
                };
                metrics::gauge!("projector_consumer_lag", "projector" => name, "partition" => element.partition().to_string())
                    .set((high - position).max(0) as f64);
            }
        })
        .await;
    }
}

fn backoff(attempt: u32, max: Duration) -> Duration {
    let base = Duration::from_millis(100) * 2u32.saturating_pow(attempt.saturating_sub(1).min(10));
    base.min(max)
}

fn raw(message: &BorrowedMessage<'_>) -> RawMessage {
    let headers = message
        .headers()
        .map(|h| {
            h.iter()
                .map(|header| {
                    (
                        header.key.to_owned(),
                        header.value.map(<[u8]>::to_vec).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    RawMessage {
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().map(<[u8]>::to_vec),
        headers,
        partition: message.partition(),
        offset: message.offset(),
    }
}

fn decode_message(message: &RawMessage) -> Result<Event, String> {
    let payload = message.payload.as_deref().ok_or("message has no value")?;
    let envelope: Envelope =
        serde_json::from_slice(payload).map_err(|e| format!("malformed envelope: {e}"))?;
    let event = decode(&envelope).map_err(|e| e.to_string())?;
    Ok(Event {
        envelope,
        event,
        partition: message.partition,
        offset: message.offset,
    })
}

/// A held or replayed event as a message, for dead-lettering.
fn envelope_message(event: &Event) -> RawMessage {
    RawMessage {
        key: Some(event.order_id().to_string().into_bytes()),
        payload: serde_json::to_vec(&event.envelope).ok(),
        headers: vec![
            (
                "event_id".into(),
                event.envelope.event_id.to_string().into_bytes(),
            ),
            (
                "event_type".into(),
                event.envelope.event_type.clone().into_bytes(),
            ),
        ],
        partition: event.partition,
        offset: event.offset,
    }
}
