//! Decoding an envelope into today's shape: the one door every consumer
//! (projectors, rebuilds, `orderctl`) goes through.
//!
//! A payload is read at the version it was written in and upcast
//! ([`crate::upcast`]); a version newer than this crate knows is refused
//! with a reason that says "newer schema", so the projector dead-letters it
//! and `orderctl dlq replay` re-drives it once the consumer is upgraded.

use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::envelope::{AGGREGATE_TYPE, Envelope};
use crate::event::{CurrentEvent, current_version};
use crate::{upcast, v1, v2};

/// Why an envelope could not be decoded; each is a reason to dead-letter.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error(
        "newer schema: {event_type} schema_version {version} is newer than this consumer understands (up to {understood}); upgrade the consumer, then replay the dead letter"
    )]
    NewerSchema {
        event_type: String,
        version: u32,
        understood: u32,
    },
    #[error("{event_type} schema_version 0 does not exist")]
    VersionZero { event_type: String },
    #[error("aggregate type {0:?} is not an order")]
    WrongAggregate(String),
    #[error("payload is about order {payload}, the envelope about {envelope}")]
    WrongOrder { envelope: Uuid, payload: Uuid },
    #[error("malformed {event_type} v{version} payload: {source}")]
    Malformed {
        event_type: String,
        version: u32,
        source: serde_json::Error,
    },
}

/// Decodes an envelope's payload, upcasting older versions to today's shape.
pub fn decode(envelope: &Envelope) -> Result<CurrentEvent, DecodeError> {
    decode_up_to(envelope, u32::MAX)
}

/// [`decode`] by a consumer that understands no version above `cap` (and
/// none above what this crate knows). Only for playing the consumer of an
/// earlier release in a rolling-upgrade test: the refusal is the very one an
/// older consumer gives.
pub fn decode_up_to(envelope: &Envelope, cap: u32) -> Result<CurrentEvent, DecodeError> {
    let event_type = envelope.event_type.as_str();
    if envelope.aggregate_type != AGGREGATE_TYPE {
        return Err(DecodeError::WrongAggregate(envelope.aggregate_type.clone()));
    }
    let known = current_version(event_type)
        .ok_or_else(|| DecodeError::UnknownType(event_type.to_owned()))?;
    let understood = known.min(cap.max(1));
    let version = envelope.schema_version;
    if version == 0 {
        return Err(DecodeError::VersionZero {
            event_type: event_type.to_owned(),
        });
    }
    if version > understood {
        return Err(DecodeError::NewerSchema {
            event_type: event_type.to_owned(),
            version,
            understood,
        });
    }
    let event = match (event_type, version) {
        ("OrderPlaced", 1) => {
            CurrentEvent::Placed(upcast::order_placed_v1(read::<v1::OrderPlaced>(envelope)?))
        }
        ("OrderPlaced", _) => CurrentEvent::Placed(read::<v2::OrderPlaced>(envelope)?),
        ("OrderPaid", _) => CurrentEvent::Paid(read(envelope)?),
        ("OrderShipped", _) => CurrentEvent::Shipped(read(envelope)?),
        ("OrderDelivered", _) => CurrentEvent::Delivered(read(envelope)?),
        ("OrderCancelled", _) => CurrentEvent::Cancelled(read(envelope)?),
        (other, _) => return Err(DecodeError::UnknownType(other.to_owned())),
    };
    // The payload must be about the order the envelope names: read models
    // are keyed by the envelope's id.
    if event.order_id() == envelope.aggregate_id {
        Ok(event)
    } else {
        Err(DecodeError::WrongOrder {
            envelope: envelope.aggregate_id,
            payload: event.order_id(),
        })
    }
}

fn read<T: DeserializeOwned>(envelope: &Envelope) -> Result<T, DecodeError> {
    // Read through a reference: `from_value` takes the tree by value, and
    // cloning it cost a projector's decode as much as the parse.
    T::deserialize(&envelope.payload).map_err(|source| DecodeError::Malformed {
        event_type: envelope.event_type.clone(),
        version: envelope.schema_version,
        source,
    })
}
