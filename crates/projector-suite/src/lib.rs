//! Support for the projector suite: a deterministic event sequence, the
//! checked-in history with its snapshots ([`history`]), a way to
//! put events on a topic of the test's own, and one [`Backend`] per
//! projector that starts it in-process against isolated resources and reads
//! its read model back as comparable JSON.

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
