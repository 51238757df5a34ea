//! PlaceOrder's two statements: the read the domain decides on and the
//! write of what it decided (the shape is described in [`super::place`]).

use std::time::Duration;

use orderflow_contracts::Envelope;
use orderflow_domain::order::CustomerSnapshot;
use orderflow_domain::{CustomerId, Order, ProductFacts, ProductId, SalesChannel};
use sqlx::PgConnection;
use uuid::Uuid;

use super::store::{corrupt, product_facts, text};
use crate::error::ApiResult;
use crate::idempotency::{Recorded, StoredResponse};

/// What the read found.
#[derive(Debug)]
pub struct Facts {
    pub customer: Option<CustomerSnapshot>,
    /// The products found (with their stock), in id order.
    pub products: Vec<ProductFacts>,
    /// The live record of the request's Idempotency-Key, if any.
    pub recorded: Option<Recorded>,
}

#[derive(sqlx::FromRow)]
struct ReadRow {
    customer_name: Option<String>,
    customer_email: Option<String>,
    request_hash: Option<Vec<u8>>,
    status: Option<i16>,
    response_body: Option<Vec<u8>>,
    location: Option<String>,
    etag: Option<String>,
    id: Option<Uuid>,
    sku: Option<String>,
    name: Option<String>,
    unit_price_minor: Option<i64>,
    currency: Option<String>,
    active: Option<bool>,
    available: Option<i64>,
}

/// The first round trip: the customer, the products `ids` with their stock
/// and, under `key` (principal, key), the key's live record. No lock is
/// taken: [`write`] guards what the decision depends on.
pub async fn read(
    conn: &mut PgConnection,
    customer: CustomerId,
    ids: &[Uuid],
    key: Option<(&str, &str)>,
) -> ApiResult<Facts> {
    let rows: Vec<ReadRow> = sqlx::query_as(include_str!("../sql/place_read.sql"))
        .bind(customer.0)
        .bind(ids)
        .bind(key.map(|k| k.0))
        .bind(key.map(|k| k.1))
        .fetch_all(&mut *conn)
        .await?;
    let Some(first) = rows.first() else {
        return Err(corrupt("the PlaceOrder read returned no row"));
    };
    let customer = match (&first.customer_name, &first.customer_email) {
        (Some(name), Some(email)) => Some(CustomerSnapshot {
            id: customer,
            name: text(name, "customer name")?,
            email: orderflow_domain::Email::parse(email).map_err(|_| corrupt("customer email"))?,
        }),
        _ => None,
    };
    let recorded = first.request_hash.clone().map(|request_hash| Recorded {
        request_hash,
        status: first.status,
        body: first.response_body.clone(),
        location: first.location.clone(),
        etag: first.etag.clone(),
    });
    let products = rows
        .into_iter()
        .filter_map(|r| {
            match (
                r.id,
                r.sku,
                r.name,
                r.unit_price_minor,
                r.currency,
                r.active,
                r.available,
            ) {
                (
                    Some(id),
                    Some(sku),
                    Some(name),
                    Some(price),
                    Some(currency),
                    Some(active),
                    Some(available),
                ) => Some(product_facts(
                    id, &sku, &name, price, &currency, active, available,
                )),
                _ => None,
            }
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Facts {
        customer,
        products,
        recorded,
    })
}

/// The Idempotency-Key the write claims, with the response it stores.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub principal: &'a str,
    pub key: &'a str,
    pub fingerprint: &'a [u8],
    pub ttl: Duration,
}

/// The second round trip, one statement: claims the key (if any), locks
/// the stock rows in id order, inserts the order, its lines and its outbox
/// rows, reserves the stock. `Ok(false)`: another request holds the key and
/// nothing was written. A stock row going negative fails the statement
/// (see [`ran_out_of_stock`]), and nothing is written either.
pub async fn write(
    conn: &mut PgConnection,
    order: &Order,
    envelopes: &[Envelope],
    traceparent: Option<&str>,
    claim: Option<Claim<'_>>,
    response: &StoredResponse,
) -> ApiResult<bool> {
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
        skus.push(line.sku.as_str());
        names.push(line.product_name.as_str());
        prices.push(line.unit_price_minor);
        quantities.push(line.quantity.get() as i32);
        totals.push(line.line_total_minor);
    }
    let events = EventColumns::of(envelopes)?;
    let claimed: bool = sqlx::query_scalar(include_str!("../sql/place_write.sql"))
        .bind(claim.map(|c| c.principal))
        .bind(claim.map(|c| c.key))
        .bind(claim.map(|c| c.fingerprint))
        .bind(claim.map(|c| c.ttl.as_secs_f64()))
        .bind(response.status as i16)
        .bind(&response.body)
        .bind(&response.location)
        .bind(&response.etag)
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
        .bind(&line_nos)
        .bind(&products)
        .bind(&skus)
        .bind(&names)
        .bind(&prices)
        .bind(&quantities)
        .bind(&totals)
        .bind(&events.event_ids)
        .bind(&events.types)
        .bind(&events.schema_versions)
        .bind(&events.aggregate_types)
        .bind(&events.aggregate_ids)
        .bind(&events.versions)
        .bind(&events.envelopes)
        .bind(traceparent)
        .fetch_one(&mut *conn)
        .await?;
    Ok(claimed)
}

/// Whether `err` is the stock CHECK refusing a reservation: another order
/// took the units between the read and the write.
pub fn ran_out_of_stock(err: &crate::error::ApiError) -> bool {
    matches!(err, crate::error::ApiError::Database(e)
        if e.as_database_error().and_then(|d| d.constraint()) == Some("stock_available_check"))
}

/// The outbox columns of `envelopes`, as arrays for `unnest`.
struct EventColumns<'a> {
    event_ids: Vec<Uuid>,
    types: Vec<&'a str>,
    schema_versions: Vec<i32>,
    aggregate_types: Vec<&'a str>,
    aggregate_ids: Vec<Uuid>,
    versions: Vec<i64>,
    /// Serialised once, stored as `json` as they are.
    envelopes: Vec<String>,
}

impl<'a> EventColumns<'a> {
    fn of(envelopes: &'a [Envelope]) -> ApiResult<Self> {
        let mut columns = Self {
            event_ids: Vec::with_capacity(envelopes.len()),
            types: Vec::with_capacity(envelopes.len()),
            schema_versions: Vec::with_capacity(envelopes.len()),
            aggregate_types: Vec::with_capacity(envelopes.len()),
            aggregate_ids: Vec::with_capacity(envelopes.len()),
            versions: Vec::with_capacity(envelopes.len()),
            envelopes: Vec::with_capacity(envelopes.len()),
        };
        for e in envelopes {
            columns.event_ids.push(e.event_id);
            columns.types.push(&e.event_type);
            columns.schema_versions.push(e.schema_version as i32);
            columns.aggregate_types.push(&e.aggregate_type);
            columns.aggregate_ids.push(e.aggregate_id);
            columns.versions.push(e.aggregate_version);
            columns
                .envelopes
                .push(serde_json::to_string(e).map_err(orderflow_outbox::Error::Encode)?);
        }
        Ok(columns)
    }
}

/// The ids of `lines`' products, sorted and without repeats (the order in
/// which the write locks their stock).
pub fn product_ids(lines: &[(ProductId, orderflow_domain::Quantity)]) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = lines.iter().map(|(p, _)| p.0).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}
