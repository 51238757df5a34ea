//! The dead-letter topic: events a projector can never apply, with why.
//!
//! The message keeps the original key, value and headers, and adds
//! `dlq_reason`, `dlq_consumer`, `dlq_attempts`, `dlq_original_partition`
//! and `dlq_original_offset`. `orderctl dlq replay` sends the value back to
//! the events topic, where every projector's inbox makes it harmless to the
//! ones that already processed it.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// How long one dead letter may take to be acknowledged.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// A raw message as consumed.
#[derive(Debug, Clone)]
pub struct RawMessage {
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub partition: i32,
    pub offset: i64,
}

/// Producer for one projector's dead letters.
#[derive(Clone)]
pub struct DeadLetters {
    producer: FutureProducer,
    topic: String,
    consumer: &'static str,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters")
            .field("topic", &self.topic)
            .finish()
    }
}

impl DeadLetters {
    /// A producer writing to `topic` on behalf of `consumer`.
    pub fn new(
        mut config: ClientConfig,
        topic: String,
        consumer: &'static str,
    ) -> anyhow::Result<Self> {
        // A dead letter that cannot be written within the timeout is an
        // error the runtime acts on (it pauses that partition), not a
        // delivery librdkafka keeps trying for its default five minutes.
        let producer = config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", SEND_TIMEOUT.as_millis().to_string())
            .create()?;
        Ok(Self {
            producer,
            topic,
            consumer,
        })
    }

    /// The dead-letter topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Sends `message` to the dead-letter topic and waits for the ack.
    pub async fn send(
        &self,
        message: &RawMessage,
        reason: &str,
        attempts: u32,
    ) -> anyhow::Result<()> {
        let partition = message.partition.to_string();
        let offset = message.offset.to_string();
        let attempts = attempts.to_string();
        let mut headers = OwnedHeaders::new();
        for (key, value) in &message.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_slice()),
            });
        }
        let headers = headers
            .insert(Header {
                key: "dlq_reason",
                value: Some(reason),
            })
            .insert(Header {
                key: "dlq_consumer",
                value: Some(self.consumer),
            })
            .insert(Header {
                key: "dlq_attempts",
                value: Some(attempts.as_str()),
            })
            .insert(Header {
                key: "dlq_original_partition",
                value: Some(partition.as_str()),
            })
            .insert(Header {
                key: "dlq_original_offset",
                value: Some(offset.as_str()),
            });
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.topic).headers(headers);
        if let Some(key) = &message.key {
            record = record.key(key.as_slice());
        }
        if let Some(payload) = &message.payload {
            record = record.payload(payload.as_slice());
        }
        self.producer
            .send(record, SEND_TIMEOUT)
            .await
            .map_err(|(e, _)| anyhow::anyhow!("dead-lettering to {}: {e}", self.topic))?;
        metrics::counter!("projector_events_dead_lettered_total", "projector" => self.consumer)
            .increment(1);
        tracing::warn!(
            consumer = self.consumer,
            reason,
            partition = message.partition,
            offset = message.offset,
            "projector.dlq event dead-lettered"
        );
        Ok(())
    }
}
