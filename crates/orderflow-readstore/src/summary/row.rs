//! Reading `order_summary` rows column by column.
//!
//! The row could come back as `to_jsonb(s)`, one value that deserialises
//! straight into [`OrderSummary`], but then the server builds a JSON copy of
//! every row and the client parses it whole, ids, timestamps and numbers
//! included: most of a read's cost on the query API's hot paths. By column,
//! those arrive in binary and only the two JSON columns (the lines and the
//! address) are parsed.

use orderflow_contracts::v2::Address;
use orderflow_readmodel::{OrderSummary, SummaryLine};
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

/// The columns [`SummaryRow`] decodes, in a `SELECT` list (qualified by the
/// alias `s`, so joins and subqueries cannot make them ambiguous).
pub const COLUMNS: &str = "s.order_id, s.customer_id, s.customer_name, s.customer_email, \
     s.status, s.currency, s.total_minor, s.line_count, s.item_count, s.lines, \
     s.payment_reference, s.carrier, s.tracking_number, s.cancel_reason, s.refund_minor, \
     s.sales_channel, s.shipping_address, s.placed_at, s.paid_at, s.shipped_at, \
     s.delivered_at, s.cancelled_at, s.version, s.updated_at";

/// One `order_summary` row as selected by [`COLUMNS`].
#[derive(Debug, sqlx::FromRow)]
pub struct SummaryRow {
    order_id: Uuid,
    customer_id: Uuid,
    customer_name: String,
    customer_email: String,
    status: String,
    currency: String,
    total_minor: i64,
    line_count: i32,
    item_count: i64,
    lines: Json<Vec<SummaryLine>>,
    payment_reference: Option<String>,
    carrier: Option<String>,
    tracking_number: Option<String>,
    cancel_reason: Option<String>,
    refund_minor: Option<i64>,
    sales_channel: Option<String>,
    shipping_address: Option<Json<Address>>,
    placed_at: OffsetDateTime,
    paid_at: Option<OffsetDateTime>,
    shipped_at: Option<OffsetDateTime>,
    delivered_at: Option<OffsetDateTime>,
    cancelled_at: Option<OffsetDateTime>,
    version: i64,
    updated_at: OffsetDateTime,
}

impl From<SummaryRow> for OrderSummary {
    fn from(row: SummaryRow) -> Self {
        OrderSummary {
            order_id: row.order_id,
            customer_id: row.customer_id,
            customer_name: row.customer_name,
            customer_email: row.customer_email,
            status: row.status,
            currency: row.currency,
            total_minor: row.total_minor,
            line_count: row.line_count,
            item_count: row.item_count,
            lines: row.lines.0,
            payment_reference: row.payment_reference,
            carrier: row.carrier,
            tracking_number: row.tracking_number,
            cancel_reason: row.cancel_reason,
            refund_minor: row.refund_minor,
            sales_channel: row.sales_channel,
            shipping_address: row.shipping_address.map(|a| a.0),
            placed_at: row.placed_at,
            paid_at: row.paid_at,
            shipped_at: row.shipped_at,
            delivered_at: row.delivered_at,
            cancelled_at: row.cancelled_at,
            version: row.version,
            updated_at: row.updated_at,
        }
    }
}
