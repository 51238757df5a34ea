//! Reading and writing the order tables inside a lifecycle command's
//! transaction, and the stored columns' conversions PlaceOrder shares.

use orderflow_domain::order::{CustomerSnapshot, ShippingAddress};
use orderflow_domain::{
    Currency, CustomerId, Email, Order, OrderEvent, OrderId, OrderLine, OrderStatus, ProductFacts,
    ProductId, Quantity, SalesChannel, Sku, Text,
};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// Stored values were validated on the way in; failing to parse one back
/// means the table was changed behind our back.
pub(super) fn corrupt(what: &'static str) -> ApiError {
    ApiError::Domain(orderflow_domain::DomainError::CorruptHistory(what))
}

pub(super) fn text(raw: &str, what: &'static str) -> ApiResult<Text> {
    Text::parse(raw, 10_000).map_err(|_| corrupt(what))
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: Uuid,
    customer_id: Uuid,
    customer_name: String,
    customer_email: String,
    status: String,
    version: i64,
    currency: String,
    total_minor: i64,
    shipping_address: sqlx::types::Json<ShippingAddress>,
    placed_at: OffsetDateTime,
    delivered_at: Option<OffsetDateTime>,
    cancelled_at: Option<OffsetDateTime>,
    cancel_reason: Option<String>,
    sales_channel: Option<String>,
}

#[derive(sqlx::FromRow)]
struct LineRow {
    product_id: Uuid,
    sku: String,
    product_name: String,
    unit_price_minor: i64,
    quantity: i32,
    line_total_minor: i64,
}

/// Locks the order row (`FOR UPDATE`) and loads what decisions need. Later
/// commands on the same order wait here, so its outbox ids follow its
/// versions.
pub async fn lock_order(tx: &mut PgConnection, id: OrderId) -> ApiResult<Option<Order>> {
    let Some(row): Option<OrderRow> = sqlx::query_as(include_str!("../sql/order_lock.sql"))
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Ok(None);
    };
    let lines: Vec<LineRow> = sqlx::query_as(include_str!("../sql/order_lines.sql"))
        .bind(id.0)
        .fetch_all(&mut *tx)
        .await?;
    let lines = lines
        .into_iter()
        .map(|l| {
            Ok(OrderLine {
                product_id: ProductId(l.product_id),
                sku: Sku::parse(&l.sku).map_err(|_| corrupt("order line sku"))?,
                product_name: text(&l.product_name, "order line name")?,
                unit_price_minor: l.unit_price_minor,
                quantity: Quantity::new(i64::from(l.quantity)).map_err(|_| corrupt("quantity"))?,
                line_total_minor: l.line_total_minor,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Some(Order {
        id: OrderId(row.id),
        customer: CustomerSnapshot {
            id: CustomerId(row.customer_id),
            name: text(&row.customer_name, "customer name")?,
            email: Email::parse(&row.customer_email).map_err(|_| corrupt("customer email"))?,
        },
        status: OrderStatus::parse(&row.status).ok_or(corrupt("order status"))?,
        version: row.version,
        lines,
        currency: Currency::parse(&row.currency).map_err(|_| corrupt("currency"))?,
        total_minor: row.total_minor,
        shipping_address: row.shipping_address.0,
        sales_channel: row
            .sales_channel
            .as_deref()
            .map(|c| SalesChannel::parse(c).ok_or(corrupt("sales channel")))
            .transpose()?,
        placed_at: row.placed_at,
        // Payment and shipment details live in their own tables and no
        // decision depends on them, so they are not loaded.
        paid_at: None,
        payment_reference: None,
        shipped_at: None,
        carrier: None,
        tracking_number: None,
        delivered_at: row.delivered_at,
        cancelled_at: row.cancelled_at,
        cancel_reason: row
            .cancel_reason
            .as_deref()
            .map(|r| text(r, "reason"))
            .transpose()?,
        refund_minor: None,
    }))
}

/// A product's facts as the domain takes them, from their stored columns.
pub(super) fn product_facts(
    id: Uuid,
    sku: &str,
    name: &str,
    unit_price_minor: i64,
    currency: &str,
    active: bool,
    available: i64,
) -> ApiResult<ProductFacts> {
    let currency = Currency::parse(currency).map_err(|_| corrupt("currency"))?;
    Ok(ProductFacts {
        id: ProductId(id),
        sku: Sku::parse(sku).map_err(|_| corrupt("sku"))?,
        name: text(name, "product name")?,
        unit_price: orderflow_domain::Money::new(unit_price_minor, currency)
            .map_err(|_| corrupt("price"))?,
        active,
        available,
    })
}

/// Adds `sign * quantity` of every line to stock (−1 reserves, +1 releases).
async fn adjust_stock(tx: &mut PgConnection, order: &Order, sign: i64) -> ApiResult<()> {
    let products: Vec<Uuid> = order.lines.iter().map(|l| l.product_id.0).collect();
    // Lock in product-id order first, as PlaceOrder does: a cancel and a
    // placement over the same products then queue instead of deadlocking.
    sqlx::query("SELECT 1 FROM stock WHERE product_id = ANY($1) ORDER BY product_id FOR UPDATE")
        .bind(&products)
        .execute(&mut *tx)
        .await?;
    let deltas: Vec<i64> = order
        .lines
        .iter()
        .map(|l| sign * i64::from(l.quantity.get()))
        .collect();
    sqlx::query(include_str!("../sql/stock_adjust.sql"))
        .bind(&products)
        .bind(&deltas)
        .execute(&mut *tx)
        .await
        .map_err(crate::error::constraint_conflict)?;
    Ok(())
}

/// Writes the effects of one lifecycle event; `after` is the evolved order.
pub async fn apply_transition(
    tx: &mut PgConnection,
    after: &Order,
    event: &OrderEvent,
    at: OffsetDateTime,
) -> ApiResult<()> {
    match event {
        OrderEvent::Placed { .. } => return Err(corrupt("OrderPlaced is not a transition")),
        OrderEvent::Paid {
            amount_minor,
            currency,
            payment_reference,
        } => {
            sqlx::query(
                "INSERT INTO payments (order_id, amount_minor, currency, payment_reference, paid_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(after.id.0)
            .bind(amount_minor)
            .bind(currency.as_str())
            .bind(payment_reference.as_ref().map(Text::as_str))
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        OrderEvent::Shipped {
            carrier,
            tracking_number,
        } => {
            sqlx::query(
                "INSERT INTO shipments (order_id, carrier, tracking_number, shipped_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(after.id.0)
            .bind(carrier.as_str())
            .bind(tracking_number.as_str())
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        OrderEvent::Delivered => {}
        OrderEvent::Cancelled { refund_minor, .. } => {
            adjust_stock(tx, after, 1).await?;
            if let Some(refund) = refund_minor {
                sqlx::query(
                    "UPDATE payments SET refund_minor = $2, refunded_at = $3 WHERE order_id = $1",
                )
                .bind(after.id.0)
                .bind(refund)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    sqlx::query(include_str!("../sql/order_update.sql"))
        .bind(after.id.0)
        .bind(after.status.as_str())
        .bind(after.version)
        .bind(after.delivered_at)
        .bind(after.cancelled_at)
        .bind(after.cancel_reason.as_ref().map(Text::as_str))
        .execute(&mut *tx)
        .await?;
    Ok(())
}
