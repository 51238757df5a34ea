//! The consumer loop that drives a [`Projection`], one concept a file:
//! settings, health and backoff, reading the next batch ahead, applying a
//! batch, retrying held events, dead letters and stalled partitions,
//! offsets and lag, and the messages themselves. This file holds the loop
//! that ties them together.

mod ahead;
mod apply;
mod dead_letters;
mod health;
mod held_retry;
mod messages;
mod offsets;
mod settings;

pub use health::Health;
pub use settings::RuntimeSettings;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use orderflow_service::stores::kafka::KafkaArgs;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::dlq::{DeadLetters, RawMessage};
use crate::held::Held;
use crate::stalls::Stalls;
use crate::{Event, Inbox, Projection, timing};
use ahead::Prepared;
use messages::raw;

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
    /// Whether held events may exist for this consumer: set when this
    /// process holds one, and by each timer sweep from the table's count.
    /// While it is false, a batch skips the query for its orders' held
    /// events (a round trip per batch); a partition handed over with held
    /// events by another replica waits for the next sweep, as it would
    /// anyway.
    held_known: std::sync::atomic::AtomicBool,
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
                recorded: Some(Default::default()),
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
            held_known: std::sync::atomic::AtomicBool::new(true),
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
        Arc::new(self).consume(token).await
    }

    /// The loop of [`Runtime::run`], shared with the task reading ahead.
    async fn consume(self: Arc<Self>, token: CancellationToken) -> anyhow::Result<()> {
        self.consumer
            .subscribe(&[&self.topic])
            .context("subscribing")?;
        let name = self.projection.name();
        tracing::info!(projector = name, topic = %self.topic, "projector.start consuming");
        let mut last_sweep = Instant::now();
        // Lag is exported from the first assignment on, not from the first
        // event: an alert on lag must be writable for a quiet system.
        let mut last_lag = Instant::now() - Duration::from_secs(60);
        // In the background: it asks the broker for every partition's
        // watermarks, which took the loop away from its batches for as long.
        let mut lag: Option<JoinHandle<()>> = None;
        // The batch read while the one before it was applied.
        let mut ahead: Option<Prepared> = None;
        loop {
            let prepared = match ahead.take() {
                Some(prepared) => Some(self.still_assigned(prepared)),
                None => {
                    let batch = tokio::select! {
                        biased;
                        () = token.cancelled() => break,
                        batch = self.next_batch() => batch,
                    };
                    // A stalled partition's messages from the poison on
                    // wait; they are read again once it is rewound.
                    let batch: Vec<RawMessage> = batch
                        .into_iter()
                        .filter(|m| !self.stalls.blocks(m.partition, m.offset))
                        .collect();
                    if batch.is_empty() {
                        // Nothing is failing while idle; the store probes in
                        // /readyz still report an outage of the store itself.
                        self.healthy();
                        None
                    } else {
                        // Nothing is ahead: what was recorded until now is
                        // in the table for this batch's check.
                        self.inbox.take_recorded();
                        let Some(prepared) = self.prepare(batch, &token).await else {
                            break;
                        };
                        Some(prepared)
                    }
                }
            };
            if let Some(prepared) = prepared {
                // What the batch before recorded after this one was checked.
                let recorded = self.inbox.take_recorded();
                // Read ahead only while no partition is stalled: a stall's
                // retry rewinds its partition, which must not happen with
                // that partition's later messages already in hand.
                // On a task of its own, so decoding it never holds up this
                // batch's store replies.
                let read_ahead = self.stalls.is_empty().then(|| {
                    let (runtime, token) = (Arc::clone(&self), token.clone());
                    tokio::spawn(async move { runtime.read_ahead(&token).await })
                });
                let ((applied, finished), next) = tokio::join!(
                    async {
                        let applied = self.finish(prepared, &recorded, &token).await;
                        (applied, Instant::now())
                    },
                    async {
                        match read_ahead {
                            Some(task) => task.await.map(Some),
                            None => Ok(None),
                        }
                    },
                );
                // How long the applied batch then waited for the next one.
                timing::stage(name, "ahead_wait", finished);
                let next = next.context("the task reading ahead")?.flatten();
                // A batch read ahead, or half read, when cancelled is not
                // applied: nothing after it may be committed either.
                if !applied? || token.is_cancelled() {
                    break;
                }
                ahead = next;
            }
            if !self.stalls.is_empty() && ahead.is_none() {
                self.retry_stalls().await;
            }
            if last_sweep.elapsed() >= self.settings.held_retry {
                last_sweep = Instant::now();
                if let Err(err) = self.sweep_held(&token).await {
                    tracing::warn!(projector = name, error = %err, "projector.held sweep failed");
                }
            }
            if last_lag.elapsed() >= Duration::from_secs(5)
                && !token.is_cancelled()
                && lag.as_ref().is_none_or(JoinHandle::is_finished)
            {
                last_lag = Instant::now();
                lag = Some(self.report_lag());
            }
        }
        tracing::info!(projector = name, "projector.stop");
        Ok(())
    }

    /// Waits up to `held_retry` for a first message, then fills the batch
    /// for up to `batch_wait`.
    async fn next_batch(&self) -> Vec<RawMessage> {
        let mut batch = Vec::new();
        let waiting = Instant::now();
        match tokio::time::timeout(self.settings.held_retry, self.consumer.recv()).await {
            Ok(Ok(message)) => batch.push(raw(&message)),
            Ok(Err(err)) => {
                tracing::warn!(projector = self.projection.name(), error = %err, "projector.consume error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                return batch;
            }
            Err(_) => return batch,
        }
        let name = self.projection.name();
        let filling = timing::stage(name, "wait", waiting);
        let deadline = tokio::time::Instant::now() + self.settings.batch_wait;
        while batch.len() < self.settings.batch_size {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(message)) => batch.push(raw(&message)),
                _ => break,
            }
        }
        timing::stage(name, "fill", filling);
        timing::batch(name, batch.len());
        batch
    }

    /// Applies a prepared batch and commits its offsets: dead-letters what
    /// did not decode, skips what the inbox has seen (`recorded`: ids
    /// recorded after the batch was checked), applies and settles the rest.
    /// False when cancelled before its effects were durable (nothing is
    /// committed then).
    async fn finish(
        &self,
        prepared: Prepared,
        recorded: &HashSet<Uuid>,
        token: &CancellationToken,
    ) -> anyhow::Result<bool> {
        let name = self.projection.name();
        let started = Instant::now();
        let Prepared {
            batch,
            decoded,
            seen: checked,
        } = prepared;
        let mut events = Vec::with_capacity(batch.len());
        for (message, decoded) in batch.iter().zip(decoded) {
            // Behind a poison that could not be dead-lettered (here or in
            // the batch before): wait with it.
            if self.stalls.blocks(message.partition, message.offset) {
                continue;
            }
            match decoded {
                Ok(event) => events.push(event),
                Err(reason) => {
                    let outcome = self.dead_letter_or_stall(message, &reason, 1).await;
                    metrics::counter!("projector_events_total", "projector" => name, "outcome" => outcome)
                        .increment(1);
                }
            }
        }
        let started = timing::stage(name, "dead_letter", started);
        // The projection that checks the inbox itself does so inside its
        // own transaction, after the batch before committed.
        let late = !self.projection.checks_inbox();
        let (seen, fresh): (Vec<Event>, Vec<Event>) = events.into_iter().partition(|e| {
            let id = &e.envelope.event_id;
            checked.contains(id) || (late && recorded.contains(id))
        });
        if !seen.is_empty() {
            metrics::counter!("projector_events_total", "projector" => name, "outcome" => "duplicate")
                .increment(seen.len() as u64);
        }
        let Some(outcomes) = self.apply(&fresh, token).await else {
            return Ok(false);
        };
        let started = timing::stage(name, "apply", started);
        let Some(advanced) = self.settle(&fresh, &outcomes, token).await else {
            return Ok(false);
        };
        let started = timing::stage(name, "settle", started);
        if !advanced.is_empty() && self.held_known.load(std::sync::atomic::Ordering::Relaxed) {
            self.retry_held(Some(&advanced), token).await?;
        }
        let started = timing::stage(name, "held_retry", started);
        self.commit(&batch);
        timing::stage(name, "commit", started);
        Ok(true)
    }
}
