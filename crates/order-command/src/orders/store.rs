//! Reading and writing the order tables inside a command's transaction.

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
fn corrupt(what: &'static str) -> ApiError {
    ApiError::Domain(orderflow_domain::DomainError::CorruptHistory(what))
}

fn text(raw: &str, what: &'static str) -> ApiResult<Text> {
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

/// The customer as PlaceOrder snapshots them.
pub async fn load_customer(
    tx: &mut PgConnection,
    id: CustomerId,
) -> ApiResult<Option<CustomerSnapshot>> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT name, email FROM customers WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
    row.map(|(name, email)| {
        Ok(CustomerSnapshot {
            id,
            name: text(&name, "customer name")?,
            email: Email::parse(&email).map_err(|_| corrupt("customer email"))?,
        })
    })
    .transpose()
}

#[derive(sqlx::FromRow)]
struct ProductRow {
    id: Uuid,
    sku: String,
    name: String,
    unit_price_minor: i64,
    currency: String,
    active: bool,
    available: i64,
}

/// Loads products with their stock, locking the stock rows in id order: two
/// orders for overlapping products always lock in the same order, so they
/// queue instead of deadlocking, and neither can oversell.
pub async fn lock_products(tx: &mut PgConnection, ids: &[Uuid]) -> ApiResult<Vec<ProductFacts>> {
    let rows: Vec<ProductRow> = sqlx::query_as(include_str!("../sql/products_lock.sql"))
        .bind(ids)
        .fetch_all(&mut *tx)
        .await?;
    rows.into_iter()
        .map(|r| {
            let currency = Currency::parse(&r.currency).map_err(|_| corrupt("currency"))?;
            Ok(ProductFacts {
                id: ProductId(r.id),
                sku: Sku::parse(&r.sku).map_err(|_| corrupt("sku"))?,
                name: text(&r.name, "product name")?,
                unit_price: orderflow_domain::Money::new(r.unit_price_minor, currency)
                    .map_err(|_| corrupt("price"))?,
                active: r.active,
                available: r.available,
            })
        })
        .collect()
}

/// Inserts a newly placed order, its lines, and reserves its stock.
pub async fn insert_order(tx: &mut PgConnection, order: &Order) -> ApiResult<()> {
    sqlx::query(include_str!("../sql/order_insert.sql"))
        .bind(order.id.0)
        .bind(order.customer.id.0)
        .bind(order.customer.name.as_str())
        .bind(order.customer.email.as_str())
        .bind(order.status.as_str())
        .bind(order.version)
        .bind(order.currency.as_str())
        .bind(order.total_minor)
        .bind(sqlx::types::Json(&order.shipping_address))
        .bind(order.placed_at)
        .bind(order.sales_channel.map(SalesChannel::as_str))
        .execute(&mut *tx)
        .await?;
    let n = order.lines.len();
    let mut line_nos = Vec::with_capacity(n);
    let mut products = Vec::with_capacity(n);
    let mut skus = Vec::with_capacity(n);
    let mut names = Vec::with_capacity(n);
    let mut prices = Vec::with_capacity(n);
    let mut quantities = Vec::with_capacity(n);
    let mut totals = Vec::with_capacity(n);
    for (i, line) in order.lines.iter().enumerate() {
        line_nos.push(i as i32 + 1);
        products.push(line.product_id.0);
        skus.push(line.sku.as_str().to_owned());
        names.push(line.product_name.as_str().to_owned());
        prices.push(line.unit_price_minor);
        quantities.push(line.quantity.get() as i32);
        totals.push(line.line_total_minor);
    }
    sqlx::query(include_str!("../sql/order_lines_insert.sql"))
        .bind(order.id.0)
        .bind(&line_nos)
        .bind(&products)
        .bind(&skus)
        .bind(&names)
        .bind(&prices)
        .bind(&quantities)
        .bind(&totals)
        .execute(&mut *tx)
        .await?;
    adjust_stock(tx, order, -1).await
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
