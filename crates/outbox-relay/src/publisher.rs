//! Sending one batch of a shard's outbox rows: enqueue every row in id
//! order without waiting, then collect every delivery report.
//! [`crate::pipeline`] keeps several such batches in flight and marks them.
//!
//! The producer is idempotent with `acks=all` and never gives up on a message
//! (`message.timeout.ms=0`): librdkafka retries in order, so a broker outage
//! stalls the batch instead of failing one message and letting the next one
//! overtake it. A row is marked published only when its report is positive;
//! anything else leaves it unpublished to be sent again (consumers
//! deduplicate), which is what makes the relay at-least-once.
//!
//! A row Kafka can never take (over the topic's `max.message.bytes`, or
//! refused by the producer outright) is parked instead of retried forever:
//! the shard keeps flowing, the row's order waits behind it, and `orderctl
//! outbox redrive` sends it again once the cause is fixed.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use futures::future::join_all;
use orderflow_outbox::{Acked, OutboxRow};
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use sqlx::PgConnection;
use sqlx::types::Uuid;
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

/// Producer settings the guarantees rest on, with `linger`, how long the
/// producer waits for more messages before it sends a partition's batch.
///
/// Nagle's algorithm is off (librdkafka leaves it on): with a batch's
/// requests in flight, the kernel held the next small request back until
/// the broker's delayed ACK, about 40 ms a batch, which made a 1,000-row
/// batch cost the same as a 2,000-row one and held a backlog drain at
/// about 25,000 events/s.
pub fn producer_config(
    mut config: rdkafka::ClientConfig,
    linger: Duration,
) -> rdkafka::ClientConfig {
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "0")
        .set("compression.type", "lz4")
        .set("linger.ms", format!("{}", linger.as_secs_f64() * 1000.0))
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000")
        .set("socket.nagle.disable", "true");
    config
}

/// One batch handed to the producer, its delivery reports still to come.
pub struct Enqueued {
    /// Rows sent, in id order, with their orders.
    ids: Vec<i64>,
    orders: Vec<Uuid>,
    deliveries: Vec<DeliveryFuture>,
    created: HashMap<i64, OffsetDateTime>,
    /// Rows parked instead of sent, with why.
    parked: Vec<(i64, String)>,
    /// Why enqueueing stopped early, if it did; the rest goes out on the retry.
    enqueue_error: Option<KafkaError>,
    /// Each row's `relay.publish` span, open until its report is in.
    spans: Vec<tracing::Span>,
}

impl std::fmt::Debug for Enqueued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enqueued")
            .field("rows", &self.ids.len())
            .field("parked", &self.parked.len())
            .field("enqueue_error", &self.enqueue_error)
            .finish()
    }
}

/// Why Kafka did not take a row.
#[derive(Debug)]
pub enum Failure {
    /// It never will (too large, invalid): park the row.
    Permanent(String),
    /// It may on a retry.
    Transient(KafkaError),
}

/// One row's delivery report.
#[derive(Debug)]
pub struct RowResult {
    pub id: i64,
    pub order: Uuid,
    pub result: Result<Acked, Failure>,
}

/// A batch's delivery reports, in the order its rows were sent.
#[derive(Debug)]
pub struct Reports {
    pub results: Vec<RowResult>,
    /// When each row was committed, for the commit-to-ack latency.
    pub created: HashMap<i64, OffsetDateTime>,
    pub enqueue_error: Option<KafkaError>,
}

/// The end of waiting for a batch's reports.
#[derive(Debug)]
pub enum Report {
    Done(Reports),
    /// Kafka acknowledged nothing for the give-up bound.
    Unreachable,
}

impl Enqueued {
    /// The rows sent (and so in flight), in id order.
    pub fn ids(&self) -> &[i64] {
        &self.ids
    }

    /// Rows parked instead of sent, with why.
    pub fn parked(&self) -> &[(i64, String)] {
        &self.parked
    }

    /// Enqueueing stopped early.
    pub fn failed(&self) -> bool {
        self.enqueue_error.is_some()
    }

    /// Waits for every delivery report, pinging the lock connection while
    /// it waits so the session never looks idle, and giving up after
    /// `waits.give_up` without them.
    pub async fn reports(
        self,
        conn: &mut PgConnection,
        waits: Waits,
    ) -> Result<Report, orderflow_outbox::Error> {
        let all = join_all(self.deliveries);
        tokio::pin!(all);
        let started = Instant::now();
        let reports = loop {
            tokio::select! {
                reports = &mut all => break reports,
                () = tokio::time::sleep(waits.ping_every) => {
                    // Still the lock's holder, and the session is not idle.
                    sqlx::query("SELECT 1").execute(&mut *conn).await.map_err(orderflow_outbox::Error::from)?;
                    if started.elapsed() >= waits.give_up {
                        return Ok(Report::Unreachable);
                    }
                }
            }
        };
        drop(self.spans);
        let results = self
            .ids
            .into_iter()
            .zip(self.orders)
            .zip(reports)
            .map(|((id, order), report)| RowResult {
                id,
                order,
                result: match report {
                    Ok(Ok(delivery)) => Ok(Acked {
                        id,
                        partition: delivery.partition,
                        offset: delivery.offset,
                    }),
                    // The broker refused this very row for good (the local
                    // size check is conservative, so this is rare).
                    Ok(Err((KafkaError::MessageProduction(code), _))) if permanent(code) => Err(
                        Failure::Permanent(format!("the broker refused the message: {code}")),
                    ),
                    Ok(Err((err, _))) => Err(Failure::Transient(err)),
                    Err(_canceled) => Err(Failure::Transient(KafkaError::Canceled)),
                },
            })
            .collect();
        Ok(Report::Done(Reports {
            results,
            created: self.created,
            enqueue_error: self.enqueue_error,
        }))
    }
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

/// Enqueues `rows` in order without waiting for any delivery.
///
/// Enqueueing is sequential: were a full queue to make one message wait
/// while a later one went in, the later one could reach Kafka first. A row
/// larger than the topic's `max.message.bytes` (read again before a row is
/// judged too large), or one librdkafka refuses outright, is parked and its
/// order's later rows are left out, so no later version of that order
/// overtakes it.
pub async fn enqueue(
    producer: &FutureProducer,
    topic: &str,
    limits: &Limits,
    rows: &[OutboxRow],
) -> Enqueued {
    let largest = rows.iter().map(message_bytes).max().unwrap_or(0);
    let max_message_bytes = limits.for_batch(largest).await;
    let mut batch = Enqueued {
        ids: Vec::with_capacity(rows.len()),
        orders: Vec::with_capacity(rows.len()),
        deliveries: Vec::with_capacity(rows.len()),
        created: HashMap::with_capacity(rows.len()),
        parked: Vec::new(),
        enqueue_error: None,
        spans: Vec::with_capacity(rows.len()),
    };
    let mut blocked: HashSet<Uuid> = HashSet::new();
    for row in rows {
        if blocked.contains(&row.aggregate_id) {
            continue;
        }
        let key = row.aggregate_id.to_string();
        let event_id = row.event_id.to_string();
        let schema_version = row.schema_version.to_string();
        let bytes = message_bytes(row);
        if max_message_bytes > 0 && bytes > max_message_bytes {
            batch.parked.push((
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
        batch.spans.push(span);
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
                    batch.ids.push(row.id);
                    batch.orders.push(row.aggregate_id);
                    batch.created.insert(row.id, row.created_at);
                    batch.deliveries.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    // Let librdkafka drain; the same record is retried next, in place.
                    record = returned;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((KafkaError::MessageProduction(code), _)) if permanent(code) => {
                    batch
                        .parked
                        .push((row.id, format!("the producer refused the message: {code}")));
                    blocked.insert(row.aggregate_id);
                    break;
                }
                Err((err, _)) => {
                    batch.enqueue_error = Some(err);
                    break;
                }
            }
        }
        if batch.enqueue_error.is_some() {
            // What is already enqueued is still reported; the rest of the
            // batch goes out on the retry.
            break;
        }
    }
    batch
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
