//! The envelope every event travels in.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// `aggregate_type` of every order event.
pub const AGGREGATE_TYPE: &str = "order";

/// The JSON envelope of every event on the events topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique per event (UUID v7); consumers deduplicate on it.
    pub event_id: Uuid,
    /// `OrderPlaced`, `OrderPaid`, `OrderShipped`, `OrderDelivered`, `OrderCancelled`.
    pub event_type: String,
    /// Version of the payload's schema for this event type.
    pub schema_version: u32,
    /// Always `order` today.
    pub aggregate_type: String,
    /// The order id; also the Kafka key.
    pub aggregate_id: Uuid,
    /// 1, 2, 3… per order, no gaps.
    pub aggregate_version: i64,
    /// When the command was accepted (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// Shared by everything one user action caused.
    pub correlation_id: Uuid,
    /// The request (command) that produced this event.
    pub causation_id: Uuid,
    /// The event itself; its shape is given by `event_type` and `schema_version`.
    pub payload: serde_json::Value,
}

/// What the command side knows about the cause of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventMeta {
    pub correlation_id: Uuid,
    pub causation_id: Uuid,
    pub occurred_at: OffsetDateTime,
}
