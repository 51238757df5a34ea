//! Version 1 of the order events: the payload shapes and their mapping from
//! the domain.

use orderflow_domain::{OrderEvent, OrderId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::envelope::{AGGREGATE_TYPE, Envelope, EventMeta};

/// The schema version this crate writes and fully understands.
pub const SCHEMA_VERSION: u32 = 1;

/// The customer as of the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub customer_id: Uuid,
    pub name: String,
    pub email: String,
}

/// One priced order line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub product_id: Uuid,
    pub sku: String,
    pub product_name: String,
    pub unit_price_minor: i64,
    pub quantity: u32,
    pub line_total_minor: i64,
}

/// Where the order ships to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

/// `OrderPlaced` v1: everything a read model needs about a new order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order_id: Uuid,
    pub customer: Customer,
    pub lines: Vec<Line>,
    pub currency: String,
    pub total_minor: i64,
    pub shipping_address: Address,
    #[serde(with = "time::serde::rfc3339")]
    pub placed_at: OffsetDateTime,
}

/// `OrderPaid` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPaid {
    pub order_id: Uuid,
    pub amount_minor: i64,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_reference: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub paid_at: OffsetDateTime,
}

/// `OrderShipped` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderShipped {
    pub order_id: Uuid,
    pub carrier: String,
    pub tracking_number: String,
    #[serde(with = "time::serde::rfc3339")]
    pub shipped_at: OffsetDateTime,
}

/// `OrderDelivered` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderDelivered {
    pub order_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub delivered_at: OffsetDateTime,
}

/// `OrderCancelled` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCancelled {
    pub order_id: Uuid,
    pub reason: String,
    /// Present when a paid order was cancelled: the amount refunded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_minor: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    pub cancelled_at: OffsetDateTime,
}

/// A decoded v1 order event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderEventV1 {
    Placed(OrderPlaced),
    Paid(OrderPaid),
    Shipped(OrderShipped),
    Delivered(OrderDelivered),
    Cancelled(OrderCancelled),
}

impl OrderEventV1 {
    /// The order the payload is about.
    pub fn order_id(&self) -> Uuid {
        match self {
            Self::Placed(e) => e.order_id,
            Self::Paid(e) => e.order_id,
            Self::Shipped(e) => e.order_id,
            Self::Delivered(e) => e.order_id,
            Self::Cancelled(e) => e.order_id,
        }
    }

    /// The contract's name for this event.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Placed(_) => "OrderPlaced",
            Self::Paid(_) => "OrderPaid",
            Self::Shipped(_) => "OrderShipped",
            Self::Delivered(_) => "OrderDelivered",
            Self::Cancelled(_) => "OrderCancelled",
        }
    }

    /// Maps a domain event of `order` at `at` to its v1 payload.
    pub fn from_domain(order: OrderId, event: &OrderEvent, at: OffsetDateTime) -> Self {
        let order_id = order.0;
        match event {
            OrderEvent::Placed {
                customer,
                lines,
                currency,
                total_minor,
                shipping_address,
                ..
            } => Self::Placed(OrderPlaced {
                order_id,
                customer: Customer {
                    customer_id: customer.id.0,
                    name: customer.name.as_str().to_owned(),
                    email: customer.email.as_str().to_owned(),
                },
                lines: lines
                    .iter()
                    .map(|l| Line {
                        product_id: l.product_id.0,
                        sku: l.sku.as_str().to_owned(),
                        product_name: l.product_name.as_str().to_owned(),
                        unit_price_minor: l.unit_price_minor,
                        quantity: l.quantity.get(),
                        line_total_minor: l.line_total_minor,
                    })
                    .collect(),
                currency: currency.to_string(),
                total_minor: *total_minor,
                shipping_address: Address {
                    line1: shipping_address.line1.to_string(),
                    line2: shipping_address.line2.as_ref().map(ToString::to_string),
                    city: shipping_address.city.to_string(),
                    postal_code: shipping_address.postal_code.to_string(),
                    country: shipping_address.country.to_string(),
                },
                placed_at: at,
            }),
            OrderEvent::Paid {
                amount_minor,
                currency,
                payment_reference,
            } => Self::Paid(OrderPaid {
                order_id,
                amount_minor: *amount_minor,
                currency: currency.to_string(),
                payment_reference: payment_reference.as_ref().map(ToString::to_string),
                paid_at: at,
            }),
            OrderEvent::Shipped {
                carrier,
                tracking_number,
            } => Self::Shipped(OrderShipped {
                order_id,
                carrier: carrier.to_string(),
                tracking_number: tracking_number.to_string(),
                shipped_at: at,
            }),
            OrderEvent::Delivered => Self::Delivered(OrderDelivered {
                order_id,
                delivered_at: at,
            }),
            OrderEvent::Cancelled {
                reason,
                refund_minor,
            } => Self::Cancelled(OrderCancelled {
                order_id,
                reason: reason.to_string(),
                refund_minor: *refund_minor,
                cancelled_at: at,
            }),
        }
    }

    /// The payload as JSON.
    pub fn to_payload(&self) -> serde_json::Value {
        let value = match self {
            Self::Placed(p) => serde_json::to_value(p),
            Self::Paid(p) => serde_json::to_value(p),
            Self::Shipped(p) => serde_json::to_value(p),
            Self::Delivered(p) => serde_json::to_value(p),
            Self::Cancelled(p) => serde_json::to_value(p),
        };
        // Plain structs of strings and integers always serialise.
        value.unwrap_or(serde_json::Value::Null)
    }

    /// Wraps the event in its envelope as version `version` of `order`.
    pub fn into_envelope(self, order: OrderId, version: i64, meta: EventMeta) -> Envelope {
        Envelope {
            event_id: Uuid::now_v7(),
            event_type: self.event_type().to_owned(),
            schema_version: SCHEMA_VERSION,
            aggregate_type: AGGREGATE_TYPE.to_owned(),
            aggregate_id: order.0,
            aggregate_version: version,
            occurred_at: meta.occurred_at,
            correlation_id: meta.correlation_id,
            causation_id: meta.causation_id,
            payload: self.to_payload(),
        }
    }
}

/// Why an envelope could not be decoded; each is a reason to dead-letter.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error(
        "{event_type} schema version {version} is newer than this consumer understands ({SCHEMA_VERSION})"
    )]
    UnsupportedVersion { event_type: String, version: u32 },
    #[error("aggregate type {0:?} is not an order")]
    WrongAggregate(String),
    #[error("payload is about order {payload}, the envelope about {envelope}")]
    WrongOrder { envelope: Uuid, payload: Uuid },
    #[error("malformed {event_type} payload: {source}")]
    Malformed {
        event_type: String,
        source: serde_json::Error,
    },
}

/// Decodes (and, for older versions, upcasts) an envelope's payload.
pub fn decode(envelope: &Envelope) -> Result<OrderEventV1, DecodeError> {
    if envelope.aggregate_type != AGGREGATE_TYPE {
        return Err(DecodeError::WrongAggregate(envelope.aggregate_type.clone()));
    }
    if envelope.schema_version > SCHEMA_VERSION || envelope.schema_version == 0 {
        return Err(DecodeError::UnsupportedVersion {
            event_type: envelope.event_type.clone(),
            version: envelope.schema_version,
        });
    }
    let payload = envelope.payload.clone();
    let malformed = |source| DecodeError::Malformed {
        event_type: envelope.event_type.clone(),
        source,
    };
    Ok(match envelope.event_type.as_str() {
        "OrderPlaced" => OrderEventV1::Placed(serde_json::from_value(payload).map_err(malformed)?),
        "OrderPaid" => OrderEventV1::Paid(serde_json::from_value(payload).map_err(malformed)?),
        "OrderShipped" => {
            OrderEventV1::Shipped(serde_json::from_value(payload).map_err(malformed)?)
        }
        "OrderDelivered" => {
            OrderEventV1::Delivered(serde_json::from_value(payload).map_err(malformed)?)
        }
        "OrderCancelled" => {
            OrderEventV1::Cancelled(serde_json::from_value(payload).map_err(malformed)?)
        }
        other => return Err(DecodeError::UnknownType(other.to_owned())),
    })
    .and_then(|event| {
        // The payload must be about the order the envelope names: read
        // models are keyed by the envelope's id.
        if event.order_id() == envelope.aggregate_id {
            Ok(event)
        } else {
            Err(DecodeError::WrongOrder {
                envelope: envelope.aggregate_id,
                payload: event.order_id(),
            })
        }
    })
}
