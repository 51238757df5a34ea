//! The order summary, defined once as a pure fold over the events in
//! today's shape (`orderflow_contracts::decode` upcasts older versions, so
//! the fold never sees one).
//!
//! The Postgres `order_summary` row, the search document and (in part) the
//! Redis status entry are all this struct in different stores, so the three
//! projectors cannot disagree about what an event means, and reconciliation
//! compares every store against the same definition. The fold carries the
//! version guard: an event applies only as version `stored + 1`; lower
//! versions are duplicates, higher ones a gap to hold.

use orderflow_contracts::CurrentEvent;
use orderflow_contracts::v2::Address;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// Postgres channel on which the summary projector announces, after each
/// commit, `order_id:version` pairs (comma-separated) of the rows it changed;
/// the query API waits on it for read-your-own-writes.
pub const SUMMARY_CHANNEL: &str = "order_summary_changed";

/// One line as the summary screen shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryLine {
    pub product_id: Uuid,
    pub sku: String,
    pub product_name: String,
    pub unit_price_minor: i64,
    pub quantity: u32,
    pub line_total_minor: i64,
}

/// Everything the order summary screen needs, in one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSummary {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub customer_name: String,
    pub customer_email: String,
    pub status: String,
    pub currency: String,
    pub total_minor: i64,
    pub line_count: i32,
    pub item_count: i64,
    pub lines: Vec<SummaryLine>,
    pub payment_reference: Option<String>,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub cancel_reason: Option<String>,
    pub refund_minor: Option<i64>,
    /// Where the order was placed; `None` when the client did not say and
    /// for every order placed before `OrderPlaced` v2 (never guessed).
    #[serde(default)]
    pub sales_channel: Option<String>,
    /// The structured address (`region` only from `OrderPlaced` v2 on).
    /// `None` only in rows written before the read model had the column,
    /// until a rebuild or `orderctl reconcile --repair` fills them.
    #[serde(default)]
    pub shipping_address: Option<Address>,
    #[serde(with = "time::serde::rfc3339")]
    pub placed_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub paid_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub shipped_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub cancelled_at: Option<OffsetDateTime>,
    /// The order version this summary reflects.
    pub version: i64,
    /// When the last applied event happened (commit time on the write side).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl OrderSummary {
    /// Product names, for display and full-text search.
    pub fn product_names(&self) -> Vec<String> {
        self.lines.iter().map(|l| l.product_name.clone()).collect()
    }

    /// SKUs, for exact search.
    pub fn skus(&self) -> Vec<String> {
        self.lines.iter().map(|l| l.sku.clone()).collect()
    }
}

/// What applying one event to a summary does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The event was the next version: the new summary.
    Applied(Box<OrderSummary>),
    /// Already applied (version at or below the stored one): ignore.
    Duplicate,
    /// An earlier version is missing: hold the event, apply it later.
    Gap { stored: i64 },
    /// The event cannot be the next one of any order (e.g. OrderPaid as
    /// version 1): poison, to be dead-lettered.
    Invalid(&'static str),
}

/// Whether `event` can be version `version` of any order: version 1 is
/// always OrderPlaced and OrderPlaced is always version 1. Stores that keep
/// less than the whole summary (the status cache) check this too.
pub fn validate(version: i64, event: &CurrentEvent) -> Result<(), &'static str> {
    match (version, event) {
        (1, CurrentEvent::Placed(_)) => Ok(()),
        (1, _) => Err("version 1 of an order must be OrderPlaced"),
        (_, CurrentEvent::Placed(_)) => Err("OrderPlaced must be version 1"),
        (v, _) if v < 1 => Err("versions start at 1"),
        _ => Ok(()),
    }
}

/// Applies version `version` of an order, which happened at `at`, to the
/// summary stored so far (`None`: nothing stored yet, version 0).
pub fn apply(
    current: Option<&OrderSummary>,
    version: i64,
    event: &CurrentEvent,
    at: OffsetDateTime,
) -> Step {
    if let Err(reason) = validate(version, event) {
        return Step::Invalid(reason);
    }
    let stored = current.map_or(0, |s| s.version);
    if version <= stored {
        return Step::Duplicate;
    }
    if version > stored + 1 {
        return Step::Gap { stored };
    }
    let Some(current) = current else {
        let CurrentEvent::Placed(placed) = event else {
            return Step::Gap { stored };
        };
        let lines: Vec<SummaryLine> = placed
            .lines
            .iter()
            .map(|l| SummaryLine {
                product_id: l.product_id,
                sku: l.sku.clone(),
                product_name: l.product_name.clone(),
                unit_price_minor: l.unit_price_minor,
                quantity: l.quantity,
                line_total_minor: l.line_total_minor,
            })
            .collect();
        return Step::Applied(Box::new(OrderSummary {
            order_id: placed.order_id,
            customer_id: placed.customer.customer_id,
            customer_name: placed.customer.name.clone(),
            customer_email: placed.customer.email.clone(),
            status: "placed".into(),
            currency: placed.currency.clone(),
            total_minor: placed.total_minor,
            line_count: lines.len() as i32,
            item_count: lines.iter().map(|l| i64::from(l.quantity)).sum(),
            lines,
            payment_reference: None,
            carrier: None,
            tracking_number: None,
            cancel_reason: None,
            refund_minor: None,
            sales_channel: placed.sales_channel.clone(),
            shipping_address: Some(placed.shipping_address.clone()),
            placed_at: placed.placed_at,
            paid_at: None,
            shipped_at: None,
            delivered_at: None,
            cancelled_at: None,
            version,
            updated_at: at,
        }));
    };
    let mut next = current.clone();
    match event {
        CurrentEvent::Placed(_) => return Step::Invalid("OrderPlaced must be version 1"),
        CurrentEvent::Paid(paid) => {
            next.status = "paid".into();
            next.paid_at = Some(paid.paid_at);
            next.payment_reference = paid.payment_reference.clone();
        }
        CurrentEvent::Shipped(shipped) => {
            next.status = "shipped".into();
            next.shipped_at = Some(shipped.shipped_at);
            next.carrier = Some(shipped.carrier.clone());
            next.tracking_number = Some(shipped.tracking_number.clone());
        }
        CurrentEvent::Delivered(delivered) => {
            next.status = "delivered".into();
            next.delivered_at = Some(delivered.delivered_at);
        }
        CurrentEvent::Cancelled(cancelled) => {
            next.status = "cancelled".into();
            next.cancelled_at = Some(cancelled.cancelled_at);
            next.cancel_reason = Some(cancelled.reason.clone());
            next.refund_minor = cancelled.refund_minor;
        }
    }
    next.version = version;
    next.updated_at = at;
    Step::Applied(Box::new(next))
}

/// The status an event leaves an order in (what the status cache stores).
pub fn status_after(event: &CurrentEvent) -> &'static str {
    match event {
        CurrentEvent::Placed(_) => "placed",
        CurrentEvent::Paid(_) => "paid",
        CurrentEvent::Shipped(_) => "shipped",
        CurrentEvent::Delivered(_) => "delivered",
        CurrentEvent::Cancelled(_) => "cancelled",
    }
}

#[cfg(test)]
mod tests;
