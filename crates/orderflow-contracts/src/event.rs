//! Today's shape of every order event, and how the command side writes it.
//!
//! This is what consumers get from [`crate::decode`] whatever version was
//! on the wire, and what producers publish: `OrderPlaced` at schema version
//! 2, the other types at version 1 (they have not changed).

use orderflow_domain::{OrderEvent, OrderId};
use uuid::Uuid;

use crate::envelope::{AGGREGATE_TYPE, Envelope, EventMeta};
use crate::v1::{Customer, Line, OrderCancelled, OrderDelivered, OrderPaid, OrderShipped};
use crate::v2::{Address, OrderPlaced};

/// Every event type of the contract with the schema version this crate
/// writes and the newest it understands (the same number: a crate always
/// reads what it writes).
pub const CURRENT_VERSIONS: [(&str, u32); 5] = [
    ("OrderPlaced", 2),
    ("OrderPaid", 1),
    ("OrderShipped", 1),
    ("OrderDelivered", 1),
    ("OrderCancelled", 1),
];

/// The schema version written and understood for `event_type` (`None`: a
/// type this crate does not know).
pub fn current_version(event_type: &str) -> Option<u32> {
    CURRENT_VERSIONS
        .iter()
        .find(|(t, _)| *t == event_type)
        .map(|(_, v)| *v)
}

/// An order event in today's shape.
// At most a batch (500) of these is alive at a time: the unboxed
// OrderPlaced costs a few hundred bytes each, less than a box per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CurrentEvent {
    Placed(OrderPlaced),
    Paid(OrderPaid),
    Shipped(OrderShipped),
    Delivered(OrderDelivered),
    Cancelled(OrderCancelled),
}

impl CurrentEvent {
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

    /// The schema version this event is written in.
    pub fn schema_version(&self) -> u32 {
        current_version(self.event_type()).unwrap_or(1)
    }

    /// Maps a domain event of `order` at `at` to its current payload.
    pub fn from_domain(order: OrderId, event: &OrderEvent, at: time::OffsetDateTime) -> Self {
        let order_id = order.0;
        match event {
            OrderEvent::Placed {
                customer,
                lines,
                currency,
                total_minor,
                shipping_address,
                sales_channel,
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
                    lines: std::iter::once(&shipping_address.line1)
                        .chain(&shipping_address.line2)
                        .map(ToString::to_string)
                        .collect(),
                    city: shipping_address.city.to_string(),
                    postal_code: shipping_address.postal_code.to_string(),
                    region: shipping_address.region.as_ref().map(ToString::to_string),
                    country: shipping_address.country.to_string(),
                },
                sales_channel: sales_channel.map(|c| c.as_str().to_owned()),
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
            schema_version: self.schema_version(),
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
