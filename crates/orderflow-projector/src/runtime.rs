//! The consumer loop that drives a [`Projection`].

use std::collections::{BTreeMap, HashMap, HashSet};
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
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::dlq::{DeadLetters, RawMessage};
use crate::held::Held;
use crate::stalls::{Stall, Stalls};
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

impl RuntimeSettings {
    /// `DLQ_TOPIC`, or the name `orderctl setup` gives it by default.
    pub fn dlq_topic(&self, events_topic: &str) -> String {
        self.dlq_topic
            .clone()
            .unwrap_or_else(|| orderflow_service::stores::kafka::default_dlq_topic(events_topic))
    }
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
    /// Partitions waiting on a dead letter that could not be written.
    stalls: Stalls,
    /// Background retries of those dead letters, by partition.
    stall_retries: tokio::sync::Mutex<HashMap<i32, JoinHandle<Result<(), String>>>>,
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
        let dlq_topic = settings.dlq_topic(&kafka.events_topic);
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
            stalls: Stalls::default(),
            stall_retries: tokio::sync::Mutex::default(),
            failures: std::sync::atomic::AtomicU32::new(0),
        })
    }

    /// The health flag behind the `projector` readiness check.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// The partitions behind the `partitions` readiness check.
    pub fn stalls(&self) -> Stalls {
        self.stalls.clone()
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
        // Lag is exported from the first assignment on, not from the first
        // event: an alert on lag must be writable for a quiet system.
        let mut last_lag = Instant::now() - Duration::from_secs(60);
        loop {
            let batch = tokio::select! {
                () = token.cancelled() => break,
                batch = self.next_batch() => batch,
            };
            // A stalled partition's messages from the poison on wait; they
            // are read again once it is rewound.
            let batch: Vec<RawMessage> = batch
                .into_iter()
                .filter(|m| !self.stalls.blocks(m.partition, m.offset))
                .collect();
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
            if !self.stalls.is_empty() {
                self.retry_stalls().await;
            }
            if last_sweep.elapsed() >= self.settings.held_retry {
                last_sweep = Instant::now();
                if let Err(err) = self.sweep_held(&token).await {
                    tracing::warn!(projector = name, error = %err, "projector.held sweep failed");
                }
            }
            if last_lag.elapsed() >= Duration::from_secs(5) && !token.is_cancelled() {
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
            // Behind a poison that could not be dead-lettered: wait with it.
            if self.stalls.blocks(message.partition, message.offset) {
                continue;
            }
            match decode_message(message) {
                Ok(event) => events.push(event),
                Err(reason) => {
                    let outcome = self.dead_letter_or_stall(message, &reason, 1).await;
                    metrics::counter!("projector_events_total", "projector" => name, "outcome" => outcome)
                        .increment(1);
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
        let Some(advanced) = self.settle(&fresh, &outcomes, token).await else {
            return Ok(false);
        };
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
    /// orders that advanced; `None` when cancelled before the held events
    /// were stored (the batch is not committed and comes again).
    async fn settle(
        &self,
        events: &[Event],
        outcomes: &[Outcome],
        token: &CancellationToken,
    ) -> Option<HashSet<Uuid>> {
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
                    self.dead_letter_or_stall(&message, reason, self.settings.max_attempts)
                        .await
                }
            };
            metrics::counter!("projector_events_total", "projector" => name, "outcome" => label)
                .increment(1);
            // One span per event in the trace it was published with, so a
            // trace runs from the command's request to each read model.
            let span = tracing::info_span!(
                "projector.event",
                projector = name,
                event_id = %event.envelope.event_id,
                order_id = %event.order_id(),
                version = event.version(),
                outcome = label,
            );
            orderflow_service::telemetry::continue_trace(&span, event.traceparent.as_deref());
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
                            return None;
                        }
                    }
                }
            }
        }
        Some(advanced)
    }

    /// Retries the held events of `orders` (their orders just advanced),
    /// until no more apply.
    async fn retry_held(
        &self,
        orders: Option<&HashSet<Uuid>>,
        token: &CancellationToken,
    ) -> anyhow::Result<()> {
        let Some(orders) = orders else {
            return self.retry_all_held(token).await;
        };
        loop {
            // A database hiccup here backs off like any store error rather
            // than ending the projector; the held rows stay for next time.
            let envelopes = match self.held.for_orders(orders).await {
                Ok(envelopes) => envelopes,
                Err(err) => {
                    if self.transient(&format!("held events: {err}"), token).await {
                        continue;
                    }
                    return Ok(());
                }
            };
            match self.retry_envelopes(envelopes, token).await {
                Some(true) => {}
                Some(false) | None => return Ok(()),
            }
        }
    }

    /// The timer's pass: every held event, a page at a time, so an order
    /// whose gap was closed elsewhere (a backfill, a repair, a dead-letter
    /// replay) is released wherever it sorts.
    async fn retry_all_held(&self, token: &CancellationToken) -> anyhow::Result<()> {
        let mut after = None;
        loop {
            let envelopes = match self.held.page(after, HELD_PAGE).await {
                Ok(envelopes) => envelopes,
                Err(err) => {
                    if self.transient(&format!("held events: {err}"), token).await {
                        continue;
                    }
                    return Ok(());
                }
            };
            let Some(last) = envelopes.last() else {
                return Ok(());
            };
            after = Some((last.aggregate_id, last.aggregate_version));
            let full = envelopes.len() as i64 == HELD_PAGE;
            if self.retry_envelopes(envelopes, token).await.is_none() || !full {
                return Ok(());
            }
        }
    }

    /// Applies held events once and releases what applied or turned out to
    /// be a duplicate. `Some(progressed)`; `None` when cancelled.
    async fn retry_envelopes(
        &self,
        envelopes: Vec<Envelope>,
        token: &CancellationToken,
    ) -> Option<bool> {
        if envelopes.is_empty() {
            return Some(false);
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
                    traceparent: None,
                })
            })
            .collect();
        let outcomes = self.apply(&events, token).await?;
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
                // Held rows are durable: one that cannot be dead-lettered
                // now stays held and is tried again by the next sweep.
                Outcome::Invalid(reason) => {
                    let message = envelope_message(event);
                    match self
                        .dead_letter(&message, reason, self.settings.max_attempts)
                        .await
                    {
                        Ok(()) => released.push(event.envelope.event_id),
                        Err(err) => tracing::error!(
                            projector = self.projection.name(),
                            error = %err,
                            "projector.dlq a held event could not be dead-lettered; it stays held"
                        ),
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
                return None;
            }
        }
        Some(progressed)
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

    /// One bounded attempt at dead-lettering `message`.
    async fn dead_letter(
        &self,
        message: &RawMessage,
        reason: &str,
        attempts: u32,
    ) -> Result<(), String> {
        self.dlq
            .send(message, reason, attempts)
            .await
            .map_err(|err| format!("{err:#}"))
    }

    /// Dead-letters `message`, or stops its partition at it when that fails
    /// (see `stalls`): the poison is neither lost nor in anyone else's way.
    /// Returns the outcome to count: `dead_lettered` or `stalled`.
    async fn dead_letter_or_stall(
        &self,
        message: &RawMessage,
        reason: &str,
        attempts: u32,
    ) -> &'static str {
        let Err(error) = self.dead_letter(message, reason, attempts).await else {
            return "dead_lettered";
        };
        let name = self.projection.name();
        metrics::counter!("projector_dlq_errors_total", "projector" => name).increment(1);
        tracing::error!(
            projector = name,
            partition = message.partition,
            offset = message.offset,
            error,
            "projector.dlq dead-lettering failed; pausing this partition only"
        );
        self.stalls.stop(
            message.partition,
            Stall {
                message: message.clone(),
                reason: reason.to_owned(),
                attempts,
                error,
                since: Instant::now(),
                last_try: Instant::now(),
            },
        );
        let mut list = TopicPartitionList::new();
        list.add_partition(&self.topic, message.partition);
        if let Err(err) = self.consumer.pause(&list) {
            // Not fatal: what it still fetches is dropped until the rewind.
            tracing::warn!(projector = name, error = %err, "projector.dlq pausing the partition failed");
        }
        self.report_stalls();
        "stalled"
    }

    /// Tries each stalled partition's dead letter again, in the background
    /// so a dead-letter topic that stays away never slows the other
    /// partitions. A written one commits past the poison, rewinds the
    /// partition to the next offset and resumes it. A partition no longer
    /// assigned here is forgotten: its new owner starts from the committed
    /// offset, the poison itself.
    async fn retry_stalls(&self) {
        let name = self.projection.name();
        let assigned: HashSet<i32> = self
            .consumer
            .assignment()
            .map(|list| {
                list.elements_for_topic(&self.topic)
                    .iter()
                    .map(|e| e.partition())
                    .collect()
            })
            .unwrap_or_default();
        let mut retries = std::mem::take(&mut *self.stall_retries.lock().await);
        for (partition, stall) in self.stalls.all() {
            if !assigned.contains(&partition) {
                tracing::info!(
                    projector = name,
                    partition,
                    "projector.dlq stalled partition revoked; its new owner retries"
                );
                if let Some(handle) = retries.remove(&partition) {
                    handle.abort();
                }
                self.stalls.clear(partition);
                continue;
            }
            let handle = match retries.remove(&partition) {
                Some(handle) if !handle.is_finished() => {
                    retries.insert(partition, handle);
                    continue;
                }
                Some(handle) => handle,
                None => {
                    if stall.last_try.elapsed() >= Duration::from_secs(1) {
                        let dlq = self.dlq.clone();
                        retries.insert(
                            partition,
                            tokio::spawn(async move {
                                dlq.send(&stall.message, &stall.reason, stall.attempts)
                                    .await
                                    .map_err(|err| format!("{err:#}"))
                            }),
                        );
                    }
                    continue;
                }
            };
            match handle.await {
                Ok(Ok(())) => self.resume_after_dead_letter(partition, &stall),
                Ok(Err(error)) => self.stalls.failed_again(partition, error),
                Err(err) => self
                    .stalls
                    .failed_again(partition, format!("retry task: {err}")),
            }
        }
        *self.stall_retries.lock().await = retries;
        self.report_stalls();
    }

    /// The stalled partition's dead letter is written: commit past it,
    /// rewind to the next offset, resume. A step that fails is done again
    /// on the next pass (the dead letter is then written once more, which
    /// `orderctl dlq replay` and the inboxes make harmless).
    fn resume_after_dead_letter(&self, partition: i32, stall: &Stall) {
        let name = self.projection.name();
        let next = stall.offset() + 1;
        let mut list = TopicPartitionList::new();
        if list
            .add_partition_offset(&self.topic, partition, Offset::Offset(next))
            .is_err()
        {
            return;
        }
        let step = self
            .consumer
            .commit(&list, CommitMode::Sync)
            .map_err(|e| ("commit", e))
            .and_then(|()| {
                self.consumer
                    .seek(
                        &self.topic,
                        partition,
                        Offset::Offset(next),
                        Duration::from_secs(5),
                    )
                    .map_err(|e| ("rewind", e))
            })
            .and_then(|()| self.consumer.resume(&list).map_err(|e| ("resume", e)));
        match step {
            Ok(()) => {
                self.stalls.clear(partition);
                tracing::info!(
                    projector = name,
                    partition,
                    offset = stall.offset(),
                    "projector.dlq dead letter written; partition resumed"
                );
            }
            Err((what, err)) => {
                tracing::warn!(projector = name, partition, error = %err, "projector.dlq {what} after the dead letter failed; retrying");
                self.stalls
                    .failed_again(partition, format!("{what}: {err}"));
            }
        }
    }

    fn report_stalls(&self) {
        metrics::gauge!("projector_partitions_paused", "projector" => self.projection.name())
            .set(self.stalls.len() as f64);
    }

    /// Commits the next offset of every partition in the batch. Asynchronous:
    /// a commit lost to a crash or a rebalance only means redelivery, which
    /// the inbox absorbs.
    fn commit(&self, batch: &[RawMessage]) {
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for message in batch {
            // Never past a poison that is not on the dead-letter topic yet.
            if self.stalls.blocks(message.partition, message.offset) {
                continue;
            }
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

    /// Consumer lag per assigned partition: high watermark minus where this
    /// consumer stands. Before a partition's first message the position is
    /// not known yet, so its committed offset stands in, or the low
    /// watermark when nothing was committed (`auto.offset.reset=earliest`):
    /// lag exists, as 0 on a quiet system, from the first assignment on.
    async fn report_lag(&self) {
        let consumer = self.consumer.clone();
        let topic = self.topic.clone();
        let name = self.projection.name();
        let _ = tokio::task::spawn_blocking(move || {
            let Ok(positions) = consumer.position() else { return };
            let committed = consumer
                .committed_offsets(positions.clone(), Duration::from_secs(2))
                .ok();
            for element in positions.elements_for_topic(&topic) {
                let partition = element.partition();
                let Ok((low, high)) = consumer.fetch_watermarks(&topic, partition, Duration::from_secs(1)) else {
                    continue;
                };
                let stored = committed
                    .as_ref()
                    .and_then(|c| c.find_partition(&topic, partition))
                    .and_then(|e| match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    });
                let position = match element.offset() {
                    Offset::Offset(o) => o,
                    _ => stored.unwrap_or(low),
                };
                metrics::gauge!("projector_consumer_lag", "projector" => name, "partition" => partition.to_string())
                    .set((high - position).max(0) as f64);
            }
        })
        .await;
    }
}

/// Held events the timer reads per query.
const HELD_PAGE: i64 = 1000;

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
    let traceparent = message
        .headers
        .iter()
        .find(|(key, _)| key == "traceparent")
        .and_then(|(_, value)| String::from_utf8(value.clone()).ok());
    Ok(Event {
        envelope,
        event,
        partition: message.partition,
        offset: message.offset,
        traceparent,
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
