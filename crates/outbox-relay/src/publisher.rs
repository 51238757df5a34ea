//! Publishing one shard's outbox rows: fetch a batch, send it with every
//! message in flight, wait for every delivery report, then mark it published.
//!
//! The producer is idempotent with `acks=all` and never gives up on a message
//! (`message.timeout.ms=0`): librdkafka retries in order, so a broker outage
//! stalls the batch instead of failing one message and letting the next one
//! overtake it. A batch is marked published only when every report is
//! positive; anything else leaves it unpublished to be sent again (consumers
//! deduplicate), which is what makes the relay at-least-once.

use std::time::Duration;

use futures::future::join_all;
use orderflow_outbox::{OutboxRow, Shard};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgConnection;
use time::OffsetDateTime;

/// What one pass of the publisher did.
#[derive(Debug)]
pub enum Outcome {
    /// Published and marked this many rows.
    Published(usize),
    /// Nothing to publish.
    Idle,
    /// Kafka refused something; nothing was marked. Back off and retry.
    Retry(KafkaError),
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

/// Publishes up to `batch` rows of `shard`.
pub async fn publish_batch(
    conn: &mut PgConnection,
    producer: &FutureProducer,
    topic: &str,
    shard: Shard,
    batch: i64,
) -> Result<Outcome, orderflow_outbox::Error> {
    let rows = orderflow_outbox::fetch_unpublished(conn, shard, batch).await?;
    if rows.is_empty() {
        return Ok(Outcome::Idle);
    }
    if let Err(err) = send_all(producer, topic, &rows).await {
        return Ok(Outcome::Retry(err));
    }
    let acked = OffsetDateTime::now_utc();
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    orderflow_outbox::mark_published(conn, &ids).await?;
    for row in &rows {
        let latency = (acked - row.created_at).as_seconds_f64().max(0.0);
        metrics::histogram!("relay_commit_to_ack_seconds").record(latency);
    }
    metrics::counter!("relay_published_total").increment(rows.len() as u64);
    Ok(Outcome::Published(rows.len()))
}

/// Enqueues every row in order, then waits for all delivery reports.
///
/// Enqueueing is sequential: were a full queue to make one message wait
/// while a later one went in, the later one could reach Kafka first.
async fn send_all(
    producer: &FutureProducer,
    topic: &str,
    rows: &[OutboxRow],
) -> Result<(), KafkaError> {
    let mut deliveries = Vec::with_capacity(rows.len());
    for row in rows {
        let key = row.aggregate_id.to_string();
        let event_id = row.event_id.to_string();
        let schema_version = row.schema_version.to_string();
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
        if let Some(traceparent) = &row.traceparent {
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
                    deliveries.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    // Let librdkafka drain; the same record is retried next, in place.
                    record = returned;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((err, _)) => return Err(err),
            }
        }
    }
    let mut first_error = None;
    for report in join_all(deliveries).await {
        match report {
            Ok(Ok(_)) => {}
            Ok(Err((err, _))) => {
                first_error.get_or_insert(err);
            }
            Err(_canceled) => {
                first_error.get_or_insert(KafkaError::Canceled);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}
