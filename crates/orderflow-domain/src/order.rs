//! The order aggregate: its states, the commands it accepts and the events
//! those commands produce.
//!
//! Lifecycle: placed → paid → shipped → delivered; cancel from placed or paid
//! (a paid cancellation refunds the total). Stock is reserved when an order is
//! placed and released when it is cancelled; the shell applies both from the
//! events, inside the same transaction.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::DomainError;
use crate::sales_channel::SalesChannel;
use crate::values::{Currency, CustomerId, Email, Money, OrderId, ProductId, Quantity, Sku, Text};

/// Most lines on one order.
pub const MAX_LINES: usize = 100;

/// Where an order is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Placed,
    Paid,
    Shipped,
    Delivered,
    Cancelled,
}

impl OrderStatus {
    /// The lower-case name used in APIs, events and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Placed => "placed",
            Self::Paid => "paid",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses the lower-case name.
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "placed" => Self::Placed,
            "paid" => Self::Paid,
            "shipped" => Self::Shipped,
            "delivered" => Self::Delivered,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The customer as they were when the order was placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerSnapshot {
    pub id: CustomerId,
    pub name: Text,
    pub email: Email,
}

/// Where the order goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingAddress {
    pub line1: Text,
    pub line2: Option<Text>,
    pub city: Text,
    pub postal_code: Text,
    /// ISO 3166-2 subdivision code of `country` (e.g. `GB-ENG`); absent
    /// when the client gave none and on orders placed before it existed
    /// (their stored JSON has no such key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Text>,
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: Text,
}

/// What the catalog says about a product at the moment of ordering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductFacts {
    pub id: ProductId,
    pub sku: Sku,
    pub name: Text,
    pub unit_price: Money,
    pub active: bool,
    /// Units in stock, read under a lock by the shell.
    pub available: i64,
}

/// One line of a placed order, priced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub product_id: ProductId,
    pub sku: Sku,
    pub product_name: Text,
    pub unit_price_minor: i64,
    pub quantity: Quantity,
    pub line_total_minor: i64,
}

/// Everything PlaceOrder needs, loaded by the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceOrder {
    pub order_id: OrderId,
    pub customer: CustomerSnapshot,
    /// In the order the client sent them.
    pub lines: Vec<(ProductFacts, Quantity)>,
    pub shipping_address: ShippingAddress,
    /// Where the order was placed, when the client said.
    pub sales_channel: Option<SalesChannel>,
}

/// A command against one order.
// One command per request, moved a few times: boxing the big variant
// would buy nothing measurable.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Place(PlaceOrder),
    Pay {
        payment_reference: Option<Text>,
    },
    Ship {
        carrier: Text,
        tracking_number: Text,
    },
    Deliver,
    Cancel {
        reason: Text,
    },
}

impl Command {
    /// The verb, for error messages.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Place(_) => "place",
            Self::Pay { .. } => "pay",
            Self::Ship { .. } => "ship",
            Self::Deliver => "deliver",
            Self::Cancel { .. } => "cancel",
        }
    }
}

/// What happened to an order. Versions and timestamps are added by
/// [`evolve`]'s caller: the n-th event of an order has version n.
// A handful of events per command, never stored in bulk: as for Command.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderEvent {
    Placed {
        order_id: OrderId,
        customer: CustomerSnapshot,
        lines: Vec<OrderLine>,
        currency: Currency,
        total_minor: i64,
        shipping_address: ShippingAddress,
        sales_channel: Option<SalesChannel>,
    },
    Paid {
        amount_minor: i64,
        currency: Currency,
        payment_reference: Option<Text>,
    },
    Shipped {
        carrier: Text,
        tracking_number: Text,
    },
    Delivered,
    Cancelled {
        reason: Text,
        /// Set when a paid order is cancelled: the amount to refund.
        refund_minor: Option<i64>,
    },
}

impl OrderEvent {
    /// The event type name of the published contract.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Placed { .. } => "OrderPlaced",
            Self::Paid { .. } => "OrderPaid",
            Self::Shipped { .. } => "OrderShipped",
            Self::Delivered => "OrderDelivered",
            Self::Cancelled { .. } => "OrderCancelled",
        }
    }
}

/// The current state of an order, as the events made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub customer: CustomerSnapshot,
    pub status: OrderStatus,
    /// Number of events so far; the first event has version 1.
    pub version: i64,
    pub lines: Vec<OrderLine>,
    pub currency: Currency,
    pub total_minor: i64,
    pub shipping_address: ShippingAddress,
    pub sales_channel: Option<SalesChannel>,
    pub placed_at: OffsetDateTime,
    pub paid_at: Option<OffsetDateTime>,
    pub payment_reference: Option<Text>,
    pub shipped_at: Option<OffsetDateTime>,
    pub carrier: Option<Text>,
    pub tracking_number: Option<Text>,
    pub delivered_at: Option<OffsetDateTime>,
    pub cancelled_at: Option<OffsetDateTime>,
    pub cancel_reason: Option<Text>,
    pub refund_minor: Option<i64>,
}

/// Decides what a command does to an order (`None`: no order yet).
pub fn decide(order: Option<&Order>, command: Command) -> Result<Vec<OrderEvent>, DomainError> {
    let action = command.action();
    let Some(order) = order else {
        return match command {
            Command::Place(place) => place_order(place).map(|e| vec![e]),
            _ => Err(DomainError::NotFound),
        };
    };
    let invalid = || DomainError::InvalidTransition {
        action,
        current: order.status,
    };
    let event = match (order.status, command) {
        (_, Command::Place(_)) => return Err(DomainError::AlreadyExists),
        (OrderStatus::Placed, Command::Pay { payment_reference }) => OrderEvent::Paid {
            amount_minor: order.total_minor,
            currency: order.currency,
            payment_reference,
        },
        (
            OrderStatus::Paid,
            Command::Ship {
                carrier,
                tracking_number,
            },
        ) => OrderEvent::Shipped {
            carrier,
            tracking_number,
        },
        (OrderStatus::Shipped, Command::Deliver) => OrderEvent::Delivered,
        (OrderStatus::Placed, Command::Cancel { reason }) => OrderEvent::Cancelled {
            reason,
            refund_minor: None,
        },
        (OrderStatus::Paid, Command::Cancel { reason }) => OrderEvent::Cancelled {
            reason,
            refund_minor: Some(order.total_minor),
        },
        _ => return Err(invalid()),
    };
    Ok(vec![event])
}

fn place_order(place: PlaceOrder) -> Result<OrderEvent, DomainError> {
    if place.lines.is_empty() {
        return Err(DomainError::NoLines);
    }
    if place.lines.len() > MAX_LINES {
        return Err(DomainError::TooManyLines { max: MAX_LINES });
    }
    let currency = place.lines[0].0.unit_price.currency;
    let mut seen = HashSet::with_capacity(place.lines.len());
    let mut lines = Vec::with_capacity(place.lines.len());
    let mut total: i64 = 0;
    for (product, quantity) in place.lines {
        if !seen.insert(product.id) {
            return Err(DomainError::DuplicateProduct(product.id));
        }
        if !product.active {
            return Err(DomainError::ProductInactive(product.id));
        }
        if product.unit_price.currency != currency {
            return Err(DomainError::MixedCurrencies);
        }
        if product.available < i64::from(quantity.get()) {
            return Err(DomainError::InsufficientStock {
                product_id: product.id,
                requested: quantity.get(),
                available: product.available,
            });
        }
        let line_total = product
            .unit_price
            .minor
            .checked_mul(i64::from(quantity.get()))
            .ok_or(DomainError::TotalTooLarge)?;
        total = total
            .checked_add(line_total)
            .ok_or(DomainError::TotalTooLarge)?;
        lines.push(OrderLine {
            product_id: product.id,
            sku: product.sku,
            product_name: product.name,
            unit_price_minor: product.unit_price.minor,
            quantity,
            line_total_minor: line_total,
        });
    }
    Ok(OrderEvent::Placed {
        order_id: place.order_id,
        customer: place.customer,
        lines,
        currency,
        total_minor: total,
        shipping_address: place.shipping_address,
        sales_channel: place.sales_channel,
    })
}

/// Applies one event, which becomes version `order.version + 1` (or 1).
pub fn evolve(
    order: Option<Order>,
    event: &OrderEvent,
    at: OffsetDateTime,
) -> Result<Order, DomainError> {
    let corrupt = DomainError::CorruptHistory;
    let Some(mut order) = order else {
        let OrderEvent::Placed {
            order_id,
            customer,
            lines,
            currency,
            total_minor,
            shipping_address,
            sales_channel,
        } = event
        else {
            return Err(corrupt("the first event of an order must be OrderPlaced"));
        };
        return Ok(Order {
            id: *order_id,
            customer: customer.clone(),
            status: OrderStatus::Placed,
            version: 1,
            lines: lines.clone(),
            currency: *currency,
            total_minor: *total_minor,
            shipping_address: shipping_address.clone(),
            sales_channel: *sales_channel,
            placed_at: at,
            paid_at: None,
            payment_reference: None,
            shipped_at: None,
            carrier: None,
            tracking_number: None,
            delivered_at: None,
            cancelled_at: None,
            cancel_reason: None,
            refund_minor: None,
        });
    };
    match event {
        OrderEvent::Placed { .. } => return Err(corrupt("OrderPlaced on an existing order")),
        OrderEvent::Paid {
            payment_reference, ..
        } => {
            order.status = OrderStatus::Paid;
            order.paid_at = Some(at);
            order.payment_reference = payment_reference.clone();
        }
        OrderEvent::Shipped {
            carrier,
            tracking_number,
        } => {
            order.status = OrderStatus::Shipped;
            order.shipped_at = Some(at);
            order.carrier = Some(carrier.clone());
            order.tracking_number = Some(tracking_number.clone());
        }
        OrderEvent::Delivered => {
            order.status = OrderStatus::Delivered;
            order.delivered_at = Some(at);
        }
        OrderEvent::Cancelled {
            reason,
            refund_minor,
        } => {
            order.status = OrderStatus::Cancelled;
            order.cancelled_at = Some(at);
            order.cancel_reason = Some(reason.clone());
            order.refund_minor = *refund_minor;
        }
    }
    order.version += 1;
    Ok(order)
}

#[cfg(test)]
mod tests;
