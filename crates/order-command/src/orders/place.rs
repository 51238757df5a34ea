//! `POST /orders`: PlaceOrder, in two round trips to the database.
//!
//! Round trips, not statements, were its cost (bench/REPORT.md: the same
//! work as one statement ran 1.4-2.6x the rate of one statement per round
//! trip), so the command is shaped around them:
//!
//! 1. **Read** (`sql/place_read.sql`, no transaction, no lock): the
//!    customer, the products with their stock and, under an
//!    Idempotency-Key, the key's live record in one statement. A record
//!    answers at once (a replay, or 422 for another request), writing
//!    nothing.
//! 2. The pure domain decides ([`decide`], [`evolve`]) on what was read:
//!    unknown, inactive or mixed-currency products, stock, totals. A refusal
//!    writes nothing.
//! 3. **Write** (`sql/place_write.sql`): one statement, so one transaction
//!    without BEGIN or COMMIT round trips. It claims the key with its
//!    response, locks the stock rows in product-id order (deadlock-free
//!    with every other stock writer), inserts the order, its lines and the
//!    outbox row, and reserves the stock. All of it commits or none does.
//!
//! Between 1 and 3 other commands may run. What the decision rests on is
//! guarded there, not re-decided in SQL: stock is taken by `available -
//! quantity` under the row lock, and the CHECK `available >= 0` (the
//! domain's own rule, "no more than is available") fails the statement when
//! others took the units, upon which the command reads again and the domain
//! decides afresh (409 `insufficient-stock` with the new `available`). A
//! concurrent request with the same key makes the write claim nothing and
//! write nothing; the next read finds its record and replays it. Catalogue
//! facts (names, prices, `active`) are snapshotted as read, as they were
//! under the lock before: product edits never waited for orders. The
//! statements as issued are mirrored in `bench/pgbench/place_order_statements.sql`.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use orderflow_domain::order::{MAX_LINES, ShippingAddress};
use orderflow_domain::{
    Command, CustomerId, DomainError, OrderId, PlaceOrder, ProductId, Quantity, SalesChannel, Text,
    decide, evolve, geo,
};
use orderflow_service::auth::Rejection;
use serde::Deserialize;
use uuid::Uuid;

use super::{OrderAccepted, accepted, envelopes, now, placement, record};
use crate::access::{Action, allow, owns};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{Actor, ApiJson, IdempotencyKey, RequestMeta, fingerprint};

/// Body of `POST /orders`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderInput {
    /// Whose order it is. A customer token may name only itself (its
    /// subject); another id is 403 `forbidden`.
    pub customer_id: Uuid,
    /// 1 to 100 lines, each product at most once (a product on two lines
    /// is 422 `order-rejected`).
    #[schema(min_items = 1, max_items = 100)]
    pub lines: Vec<LineInput>,
    pub shipping_address: AddressInput,
    /// Where the order was placed: `web`, `mobile_app`, `store`,
    /// `marketplace` or `phone`. Optional: absent means not known, and the
    /// order shows none (clients written before it existed keep working).
    #[serde(default)]
    #[schema(nullable = false)]
    pub sales_channel: Option<SalesChannelInput>,
}

/// The sales channels `POST /orders` accepts (see `orderflow_domain::SalesChannel`).
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SalesChannelInput {
    Web,
    MobileApp,
    Store,
    Marketplace,
    Phone,
}

impl From<SalesChannelInput> for SalesChannel {
    fn from(input: SalesChannelInput) -> Self {
        match input {
            SalesChannelInput::Web => Self::Web,
            SalesChannelInput::MobileApp => Self::MobileApp,
            SalesChannelInput::Store => Self::Store,
            SalesChannelInput::Marketplace => Self::Marketplace,
            SalesChannelInput::Phone => Self::Phone,
        }
    }
}

/// One line of `POST /orders`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineInput {
    pub product_id: Uuid,
    /// 1 to 1000.
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(deserialize_with = "crate::extract::json_int")]
    pub quantity: i64,
}

/// Shipping address of `POST /orders`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressInput {
    /// 1–200 characters.
    pub line1: String,
    /// Up to 200 characters; blank or absent means none.
    #[serde(default)]
    pub line2: Option<String>,
    /// 1–100 characters.
    pub city: String,
    /// 1–20 characters.
    pub postal_code: String,
    /// ISO 3166-2 subdivision code of `country`, e.g. `GB-ENG` or `US-CA`
    /// (any case; stored upper case). Optional.
    #[serde(default)]
    #[schema(nullable = false)]
    pub region: Option<String>,
    /// An assigned ISO 3166-1 alpha-2 code, e.g. `GB` (any case; `UK` and
    /// `XX` are refused).
    pub country: String,
}

/// How often PlaceOrder reads and decides again when the write found its
/// stock taken or its key claimed by a concurrent request.
const ATTEMPTS: usize = 3;

struct ValidOrder {
    customer_id: CustomerId,
    lines: Vec<(ProductId, Quantity)>,
    address: ShippingAddress,
    sales_channel: Option<SalesChannel>,
}

fn validate(input: &PlaceOrderInput) -> ApiResult<ValidOrder> {
    // The domain refuses this too; checking first avoids locking a
    // thousand stock rows for a request that cannot succeed.
    if input.lines.len() > MAX_LINES {
        return Err(DomainError::TooManyLines { max: MAX_LINES }.into());
    }
    let mut errors = Vec::new();
    let mut lines = Vec::with_capacity(input.lines.len());
    for (i, line) in input.lines.iter().enumerate() {
        match Quantity::new(line.quantity) {
            Ok(q) => lines.push((ProductId(line.product_id), q)),
            Err(e) => errors.push(FieldError {
                field: format!("lines[{i}].quantity"),
                message: e.to_string(),
            }),
        }
    }
    let a = &input.shipping_address;
    let line1 = address_text(&mut errors, "line1", &a.line1, 200);
    let line2 = match a.line2.as_deref() {
        Some(l) if !l.trim().is_empty() => address_text(&mut errors, "line2", l, 200),
        _ => None,
    };
    let city = address_text(&mut errors, "city", &a.city, 100);
    let postal_code = address_text(&mut errors, "postal_code", &a.postal_code, 20);
    // Shape first (what the OpenAPI document says: two letters, an ISO
    // 3166-2 shape): 422 `validation`. Then facts the schema cannot carry
    // (an unassigned country, a region of another country): 422
    // `address-rejected`, a refusal for the data, as for an unknown product.
    let trimmed = a.country.trim();
    if !(trimmed.len() == 2 && trimmed.bytes().all(|b| b.is_ascii_alphabetic())) {
        errors.push(FieldError {
            field: "shipping_address.country".into(),
            message: "must be an ISO 3166-1 alpha-2 code such as GB".into(),
        });
    }
    if let Some(Err(e)) = a.region.as_deref().map(geo::region_code) {
        errors.push(FieldError {
            field: "shipping_address.region".into(),
            message: e.to_string(),
        });
    }
    let (Some(line1), Some(city), Some(postal_code), true) =
        (line1, city, postal_code, errors.is_empty())
    else {
        return Err(ApiError::Validation(errors));
    };
    let mut rejected = Vec::new();
    let country = geo::country(&a.country)
        .map_err(|e| {
            rejected.push(FieldError {
                field: "shipping_address.country".into(),
                message: e.to_string(),
            })
        })
        .ok();
    let region = match (a.region.as_deref(), &country) {
        (Some(r), Some(country)) => geo::region(r, country)
            .map_err(|e| {
                rejected.push(FieldError {
                    field: "shipping_address.region".into(),
                    message: e.to_string(),
                })
            })
            .ok(),
        _ => None,
    };
    match country {
        Some(country) if rejected.is_empty() => Ok(ValidOrder {
            customer_id: CustomerId(input.customer_id),
            lines,
            address: ShippingAddress {
                line1,
                line2,
                city,
                postal_code,
                region,
                country,
            },
            sales_channel: input.sales_channel.map(SalesChannel::from),
        }),
        _ => Err(ApiError::AddressRejected(rejected)),
    }
}

fn address_text(errors: &mut Vec<FieldError>, field: &str, raw: &str, max: usize) -> Option<Text> {
    Text::parse(raw, max)
        .map_err(|e| {
            errors.push(FieldError {
                field: format!("shipping_address.{field}"),
                message: e.to_string(),
            })
        })
        .ok()
}

/// `POST /orders`
#[utoipa::path(post, path = "/orders", tag = "orders",
    request_body = PlaceOrderInput,
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, description = "1 to 255 visible ASCII characters; a retry with the same key and body returns the first response (`Idempotent-Replayed: true`)")),
    responses(
        (status = 201, body = OrderAccepted, description = "Placed; `Location` names the order, `ETag` is its version"),
        (status = 400, description = "`malformed-json`; `invalid-header`: a malformed Idempotency-Key", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "`insufficient-stock` (with `available`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 413, description = "`payload-too-large`: a body over 64 KiB", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 415, description = "`unsupported-media-type`: a body that is not application/json", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "`invalid-body`, `validation`, `address-rejected` (a country code that is not assigned, a region of another country; with `errors`), `unknown-reference` (customer or product), `order-rejected` (a product on two lines, an inactive product, mixed currencies, a total too large), `idempotency-key-reused`", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 500, description = "`internal`: a database failure (details only in the log)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub async fn place_order(
    State(state): State<AppState>,
    actor: Actor,
    meta: RequestMeta,
    key: IdempotencyKey,
    body: ApiJson<PlaceOrderInput>,
) -> ApiResult<Response> {
    let result = place(&state, &actor, &meta, key, body).await;
    record("place", &result);
    result
}

async fn place(
    state: &AppState,
    actor: &Actor,
    meta: &RequestMeta,
    key: IdempotencyKey,
    body: ApiJson<PlaceOrderInput>,
) -> ApiResult<Response> {
    allow(actor, Action::Place)?;
    if !owns(actor, body.value.customer_id) {
        return Err(Rejection::Forbidden(
            "a customer token places orders for its own customer id only",
        )
        .into());
    }
    let valid = validate(&body.value)?;
    let print = fingerprint("POST", "/orders", &body.bytes);
    let principal = actor.principal();
    let key = key.0.as_deref();
    let claim = key.map(|key| placement::Claim {
        principal: &principal,
        key,
        fingerprint: &print,
        ttl: state.idempotency_ttl,
    });
    let ids = placement::product_ids(&valid.lines);
    // One connection for both round trips: each checkout of the pool costs
    // a round trip of its own (sqlx pings a connection as it hands it out
    // and as it takes it back).
    let mut conn = state.pool.acquire().await?;
    for attempt in 1..=ATTEMPTS {
        let facts = placement::read(
            &mut conn,
            valid.customer_id,
            &ids,
            key.map(|k| (principal.as_str(), k)),
        )
        .await?;
        if let Some(recorded) = facts.recorded {
            return Ok(recorded.replay(&print)?.into_response());
        }
        let customer = facts.customer.ok_or(ApiError::UnknownReference {
            what: "customer",
            id: valid.customer_id.0,
        })?;
        let found: HashMap<ProductId, _> = facts.products.into_iter().map(|f| (f.id, f)).collect();
        let lines = valid
            .lines
            .iter()
            .map(|(id, q)| {
                found
                    .get(id)
                    .map(|f| (f.clone(), *q))
                    .ok_or(ApiError::UnknownReference {
                        what: "product",
                        id: id.0,
                    })
            })
            .collect::<ApiResult<Vec<_>>>()?;
        let order_id = OrderId::new();
        let command = Command::Place(PlaceOrder {
            order_id,
            customer,
            lines,
            shipping_address: valid.address.clone(),
            sales_channel: valid.sales_channel,
        });
        let events = decide(None, command)?;
        let at = now();
        let mut order = None;
        for event in &events {
            order = Some(evolve(order, event, at)?);
        }
        let order = order.ok_or(DomainError::CorruptHistory("PlaceOrder decided no event"))?;
        let response =
            accepted(StatusCode::CREATED, &order).location(format!("/orders/{order_id}"));
        let envelopes = envelopes(order_id, 0, &events, meta, at);
        let traceparent = meta.traceparent.as_deref();
        match placement::write(&mut conn, &order, &envelopes, traceparent, claim, &response).await {
            Ok(true) => return Ok(response.into_response()),
            // Another request holds the key: the next read replays it.
            Ok(false) => {}
            // Others took the stock since the read: decide again.
            Err(e) if attempt < ATTEMPTS && placement::ran_out_of_stock(&e) => {}
            Err(ApiError::Database(e)) => return Err(crate::error::constraint_conflict(e)),
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::Conflict(
        "the order's stock or Idempotency-Key kept changing while it was placed; retry",
    ))
}
