//! Support for the projector suite: a deterministic event sequence, the
//! checked-in history with its snapshots ([`history`]), a way to
//! put events on a topic of the test's own, and one [`Backend`] per
//! projector that starts it as a process of its built binary against
//! isolated resources and reads its store back as comparable JSON through
//! the store's `ReadStore` (the same code for every backend).

pub mod backends;
pub mod events;
pub mod history;

use std::time::Duration;

use futures::future::BoxFuture;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use uuid::Uuid;

pub use backends::{Backend, Running};

/// Puts raw messages on `topic` in order (key = order id), waiting for acks.
pub async fn produce(brokers: &str, topic: &str, messages: &[(Uuid, Vec<u8>)]) {
    send_all(brokers, topic, None, messages).await;
}

/// Puts raw messages on one partition of `topic`, in order, waiting for acks
/// (for tests that must know which partition an event is on).
pub async fn produce_to(brokers: &str, topic: &str, partition: i32, messages: &[(Uuid, Vec<u8>)]) {
    send_all(brokers, topic, Some(partition), messages).await;
}

async fn send_all(
    brokers: &str,
    topic: &str,
    partition: Option<i32>,
    messages: &[(Uuid, Vec<u8>)],
) {
    let producer: FutureProducer = orderflow_testkit::kafka_config()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .expect("producer");
    for (key, value) in messages {
        let key = key.to_string();
        let mut record = FutureRecord::to(topic).key(&key).payload(value);
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| e)
            .expect("produced");
    }
}

/// Puts many raw messages on `topic` as fast as the broker takes them, for
/// the benchmarks: everything in flight at once (lz4, `acks=all`), each
/// enqueued in order so an order's events keep their order on the
/// partition, then every delivery awaited.
pub async fn produce_bulk(topic: &str, messages: &[(Uuid, Vec<u8>)]) {
    let producer: FutureProducer = orderflow_testkit::kafka_config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    // Enqueued in order (a full queue is waited out in place), so each
    // order's events keep their order on the partition.
    let mut deliveries = Vec::with_capacity(messages.len());
    for (key, value) in messages {
        let key = key.to_string();
        let mut record = FutureRecord::to(topic).key(&key).payload(value);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => break deliveries.push(delivery),
                Err((_, returned)) => {
                    record = returned;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
    for d in futures::future::join_all(deliveries).await {
        d.expect("delivered").map_err(|(e, _)| e).expect("produced");
    }
}

/// Polls `read` until it says every order in `expected` reached its version.
pub async fn wait_for_versions(
    what: &str,
    timeout: Duration,
    expected: &[(Uuid, i64)],
    read: impl Fn() -> BoxFuture<'static, Value>,
) -> Value {
    orderflow_testkit::eventually(what, timeout, || {
        let fut = read();
        async move {
            let state = fut.await;
            let done = expected.iter().all(|(order, version)| {
                state[order.to_string()]["version"].as_i64() == Some(*version)
            });
            done.then_some(state)
        }
    })
    .await
}
