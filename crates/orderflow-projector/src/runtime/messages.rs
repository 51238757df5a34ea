//! Kafka messages as the runtime keeps them, and decoding them into events.

use orderflow_contracts::{Envelope, decode_up_to};
use rdkafka::Message as _;
use rdkafka::message::{BorrowedMessage, Headers as _};

use crate::Event;
use crate::dlq::RawMessage;

pub(super) fn raw(message: &BorrowedMessage<'_>) -> RawMessage {
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

/// Decodes (and upcasts) a message; `cap` is the newest schema version
/// accepted (`u32::MAX`: whatever this build understands).
pub(super) fn decode_message(message: &RawMessage, cap: u32) -> Result<Event, String> {
    let payload = message.payload.as_deref().ok_or("message has no value")?;
    let envelope: Envelope =
        serde_json::from_slice(payload).map_err(|e| format!("malformed envelope: {e}"))?;
    let event = decode_up_to(&envelope, cap).map_err(|e| e.to_string())?;
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
