//! Publishing one shard's outbox rows: fetch a batch, send it with every
//! message in flight, wait for every delivery report, then mark it published.
//!
//! The producer is idempotent with `acks=all` and never gives up on a message
//! (`message.timeout.ms=0`): librdkafka retries in order, so a broker outage
//! stalls the batch instead of failing one message and letting the next one
//! overtake it. A batch is marked published only when every report is
//! positive; anything else leaves it unpublished to be sent again (consumers
//! deduplicate), which is what makes the relay at-least-once.
//!
//! A row Kafka can never take (over the topic's `max.message.bytes`, or
//! refused by the producer outright) is parked instead of retried forever:
//! the shard keeps flowing, the row's order waits behind it, and `orderctl
//! outbox redrive` sends it again once the cause is fixed.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::future::join_all;
use std::sync::atomic::{AtomicI64, Ordering};

use orderflow_outbox::{Acked, OutboxRow, Shard};
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgConnection;
use time::OffsetDateTime;

/// What one pass of the publisher did.
#[derive(Debug)]
pub enum Outcome {
    /// Published and marked this many rows, and parked `parked` that Kafka
    /// can never take.
    Published { published: usize, parked: usize },
    /// Nothing to publish.
    Idle,
    /// Kafka refused something; what it acknowledged was marked, the rest
    /// is sent again. Back off and retry.
    Retry(KafkaError),
    /// Kafka acknowledged nothing for the give-up bound while rows waited:
    /// leadership should go to a replica that may reach it.
    Unreachable(Duration),
}

/// The topic's `max.message.bytes`, read from the broker and re-read when
/// a row looks too large (an operator may have raised it to let a parked
/// row through).
pub struct Limits {
    admin: AdminClient<DefaultClientContext>,
    topic: String,
    /// The last value read; 0 while never read successfully.
    max_message_bytes: AtomicI64,
    /// When the last attempt to read it was, to bound the attempts while
    /// the broker does not answer.
    tried_at: std::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("topic", &self.topic)
            .field("max_message_bytes", &self.max_message_bytes)
            .finish()
    }
}

impl Limits {
    /// Limits of `topic`, unknown until [`Limits::refresh`].
    pub fn new(admin: AdminClient<DefaultClientContext>, topic: String) -> Self {
        Self {
            admin,
            topic,
            max_message_bytes: AtomicI64::new(0),
            tried_at: std::sync::Mutex::new(None),
        }
    }

    /// The limit to judge a batch whose largest row has `largest` bytes by:
    /// read again when the row looks too large, and while it was never read
    /// (at most every few seconds, so a broker that does not answer costs
    /// little); 0 when unknown (nothing is judged too large, and Kafka itself
    /// decides).
    pub async fn for_batch(&self, largest: i64) -> i64 {
        let known = self.max_message_bytes();
        if known > 0 && largest <= known {
            return known;
        }
        // A row over a known limit: read it now (an operator who raised it
        // and re-drove the row must not see it parked again on a stale value).
        if known > 0 {
            return self.refresh().await;
        }
        let due = {
            let mut tried = self
                .tried_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let due = tried.is_none_or(|t| t.elapsed() >= Duration::from_secs(5));
            if due {
                *tried = Some(Instant::now());
            }
            due
        };
        if due { self.refresh().await } else { known }
    }

    /// The last value read; 0 when never read.
    pub fn max_message_bytes(&self) -> i64 {
        self.max_message_bytes.load(Ordering::Relaxed)
    }

    /// Reads `max.message.bytes` again; keeps the last value on failure.
    pub async fn refresh(&self) -> i64 {
        let specifier = ResourceSpecifier::Topic(&self.topic);
        let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(5)));
        let described = self.admin.describe_configs([&specifier], &options).await;
        let value = described.ok().and_then(|results| {
            results.into_iter().find_map(|r| {
                r.ok()?
                    .get("max.message.bytes")?
                    .value
                    .as_deref()?
                    .parse::<i64>()
                    .ok()
            })
        });
        match value {
            Some(bytes) => self.max_message_bytes.store(bytes, Ordering::Relaxed),
            None => {
                tracing::warn!(topic = %self.topic, "relay.limits could not read max.message.bytes");
            }
        }
        self.max_message_bytes()
    }
}

/// How the publisher waits on Kafka while it holds the shard's lock.
#[derive(Debug, Clone, Copy)]
pub struct Waits {
    /// Ping the lock connection this often while deliveries are pending, so
    /// the session never looks idle to `idle_session_timeout`.
    pub ping_every: Duration,
    /// Give the lock up after this long without an acknowledgement.
    pub give_up: Duration,
}

/// Producer settings the guarantees rest on.
pub fn producer_config(mut config: rdkafka::ClientConfig) -> rdkafka::ClientConfig {
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "0")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000");
    config
}

/// Publishes up to `batch` rows of `shard`. A row larger than the topic's
/// `max.message.bytes` (read again before a row is judged too large), or
/// one librdkafka refuses outright, is parked, and its order's later rows
/// in the batch are not sent: they wait behind it.
#[allow(clippy::too_many_arguments)]
pub async fn publish_batch(
    conn: &mut PgConnection,
    producer: &FutureProducer,
    topic: &str,
    limits: &Limits,
    shard: Shard,
    batch: i64,
    waits: Waits,
) -> Result<Outcome, orderflow_outbox::Error> {
    let rows = orderflow_outbox::fetch_unpublished(conn, shard, batch).await?;
    if rows.is_empty() {
        return Ok(Outcome::Idle);
    }
    let largest = rows.iter().map(message_bytes).max().unwrap_or(0);
    let max_message_bytes = limits.for_batch(largest).await;
    let sent = match send_all(conn, producer, topic, max_message_bytes, &rows, waits).await? {
        Sent::Done(sent) => sent,
        Sent::Unreachable => return Ok(Outcome::Unreachable(waits.give_up)),
    };
    for (id, reason) in &sent.parked {
        orderflow_outbox::park(conn, *id, reason).await?;
        metrics::counter!("relay_parked_total").increment(1);
        tracing::error!(
            row = id,
            reason,
            "relay.park a row Kafka cannot take; its order waits"
        );
    }
    let acked_at = OffsetDateTime::now_utc();
    orderflow_outbox::mark_published(conn, &sent.acked).await?;
    let created: std::collections::HashMap<i64, OffsetDateTime> =
        rows.iter().map(|r| (r.id, r.created_at)).collect();
    for acked in &sent.acked {
        if let Some(created) = created.get(&acked.id) {
            let latency = (acked_at - *created).as_seconds_f64().max(0.0);
            metrics::histogram!("relay_commit_to_ack_seconds").record(latency);
        }
    }
    metrics::counter!("relay_published_total").increment(sent.acked.len() as u64);
    Ok(match sent.error {
        Some(err) => Outcome::Retry(err),
        None => Outcome::Published {
            published: sent.acked.len(),
            parked: sent.parked.len(),
        },
    })
}

/// What one send of a batch came to.
struct Batch {
    acked: Vec<Acked>,
    parked: Vec<(i64, String)>,
    error: Option<KafkaError>,
}

enum Sent {
    Done(Batch),
    Unreachable,
}

/// Errors that the same row will get every time, whatever Kafka's state.
fn permanent(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::InvalidRecord
    )
}

/// Enqueues every row in order, then waits for all delivery reports.
///
/// Enqueueing is sequential: were a full queue to make one message wait
/// while a later one went in, the later one could reach Kafka first. A row
/// that cannot be sent is parked and its order's later rows are left out,
/// so no later version of that order overtakes it.
async fn send_all(
    conn: &mut PgConnection,
    producer: &FutureProducer,
    topic: &str,
    max_message_bytes: i64,
    rows: &[OutboxRow],
    waits: Waits,
) -> Result<Sent, orderflow_outbox::Error> {
    let mut deliveries = Vec::with_capacity(rows.len());
    let mut parked = Vec::new();
    let mut blocked: HashSet<sqlx::types::Uuid> = HashSet::new();
    let mut enqueue_error = None;
    let mut spans = Vec::with_capacity(rows.len());
    for row in rows {
        if blocked.contains(&row.aggregate_id) {
            continue;
        }
        let key = row.aggregate_id.to_string();
        let event_id = row.event_id.to_string();
        let schema_version = row.schema_version.to_string();
        let bytes = message_bytes(row);
        if max_message_bytes > 0 && bytes > max_message_bytes {
            parked.push((
                row.id,
                format!(
                    "the message is {bytes} bytes, over the topic's max.message.bytes \
                     ({max_message_bytes})"
                ),
            ));
            blocked.insert(row.aggregate_id);
            continue;
        }
        let mut headers = OwnedHeaders::new_with_capacity(4)
            .insert(Header {
                key: "event_id",
                value: Some(event_id.as_str()),
            })
            .insert(Header {
                key: "event_type",
                value: Some(row.event_type.as_str()),
            })
            .insert(Header {
                key: "schema_version",
                value: Some(schema_version.as_str()),
            });
        // The row's hop in its trace: a span continuing the command's
        // context, which the projectors then continue from the header. It
        // lasts until the batch's delivery reports are in.
        let span = tracing::info_span!(
            "relay.publish",
            event_id = %row.event_id,
            order_id = %row.aggregate_id,
            version = row.aggregate_version,
        );
        orderflow_service::telemetry::continue_trace(&span, row.traceparent.as_deref());
        let traceparent = span
            .in_scope(orderflow_service::telemetry::current_traceparent)
            .or_else(|| row.traceparent.clone());
        spans.push(span);
        if let Some(traceparent) = &traceparent {
            headers = headers.insert(Header {
                key: "traceparent",
                value: Some(traceparent.as_str()),
            });
        }
        let mut record = FutureRecord::to(topic)
            .key(&key)
            .payload(&row.envelope)
            .headers(headers);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push(((row.id, row.aggregate_id), delivery));
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    // Let librdkafka drain; the same record is retried next, in place.
                    record = returned;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((KafkaError::MessageProduction(code), _)) if permanent(code) => {
                    parked.push((row.id, format!("the producer refused the message: {code}")));
                    blocked.insert(row.aggregate_id);
                    break;
                }
                Err((err, _)) => {
                    enqueue_error = Some(err);
                    break;
                }
            }
        }
        if enqueue_error.is_some() {
            // What is already enqueued is still reported below; the rest
            // of the batch goes out on the retry.
            break;
        }
    }
    let (ids, futures): (Vec<(i64, sqlx::types::Uuid)>, Vec<_>) = deliveries.into_iter().unzip();
    let all = join_all(futures);
    tokio::pin!(all);
    let started = Instant::now();
    let reports = loop {
        tokio::select! {
            reports = &mut all => break reports,
            () = tokio::time::sleep(waits.ping_every) => {
                // Still the lock's holder, and the session is not idle.
                sqlx::query("SELECT 1").execute(&mut *conn).await.map_err(orderflow_outbox::Error::from)?;
                if started.elapsed() >= waits.give_up {
                    return Ok(Sent::Unreachable);
                }
            }
        }
    };
    drop(spans);
    let mut acked = Vec::with_capacity(ids.len());
    let mut error = enqueue_error;
    for ((id, order), report) in ids.into_iter().zip(reports) {
        // Behind a row of its order that the broker refused for good: not
        // marked, so it goes out again after that row once re-driven.
        if blocked.contains(&order) {
            continue;
        }
        match report {
            Ok(Ok(delivery)) => acked.push(Acked {
                id,
                partition: delivery.partition,
                offset: delivery.offset,
            }),
            // The broker refused this very row for good (the local size
            // check is conservative, so this is rare): park it.
            Ok(Err((KafkaError::MessageProduction(code), _))) if permanent(code) => {
                parked.push((id, format!("the broker refused the message: {code}")));
                blocked.insert(order);
            }
            Ok(Err((err, _))) => {
                error.get_or_insert(err);
            }
            Err(_canceled) => {
                error.get_or_insert(KafkaError::Canceled);
            }
        }
    }
    Ok(Sent::Done(Batch {
        acked,
        parked,
        error,
    }))
}

/// Bytes a record batch adds around one record (header, CRC, lengths).
const RECORD_OVERHEAD: usize = 100;

/// What the broker counts of a row against `max.message.bytes`,
/// uncompressed: value, key, headers and the record batch's overhead.
fn message_bytes(row: &OutboxRow) -> i64 {
    (row.envelope.len()
        + 36 // the key, an order id
        + 36 // the event_id header
        + row.event_type.len()
        + row.traceparent.as_ref().map_or(0, String::len)
        + RECORD_OVERHEAD) as i64
}
