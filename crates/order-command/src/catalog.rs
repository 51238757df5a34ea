//! Catalog commands: customers, products and stock.
//!
//! The catalog is reference data for orders; it emits no events (the v1
//! contract is about orders). PlaceOrder snapshots what it needs (customer
//! name and email, product name, SKU and price) into the order and its
//! `OrderPlaced` event, so later catalog edits never rewrite history.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use orderflow_domain::{Currency, Email, Money, Sku, Text};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::access::{Action, allow};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, FieldError, constraint_conflict};
use crate::extract::{
    Actor, ApiJson, IdPath, IdempotencyKey, fingerprint, json_int, json_int_or_null,
};
use crate::idempotency::StoredResponse;

/// Body of `POST /customers` and `PUT /customers/{id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerInput {
    /// 1–200 characters (after trimming whitespace).
    pub name: String,
    /// An address like `name@example.com`, at most 254 characters; unique
    /// among customers, stored lower-case.
    pub email: String,
}

/// A customer as stored.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct CustomerView {
    pub id: Uuid,
    pub name: String,
    pub email: String,
}

/// Body of `POST /products` and `PUT /products/{id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    /// `A-Z 0-9 - _ .`, 1–64 characters, unique; stored upper-case.
    pub sku: String,
    /// 1–200 characters (after trimming whitespace).
    pub name: String,
    /// Price of one unit in minor units (cents), 0 to 10^13.
    #[schema(minimum = 0, maximum = 10_000_000_000_000_i64)]
    #[serde(deserialize_with = "json_int")]
    pub unit_price_minor: i64,
    /// A three-letter ISO 4217 code (`eur` is stored as `EUR`).
    pub currency: String,
    /// Whether it can be ordered (default true).
    #[serde(default = "default_true")]
    pub active: bool,
    /// Initial stock on create, 0 to 10^9 (default 0); ignored by PUT, use `/stock`.
    #[serde(default, deserialize_with = "json_int_or_null")]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub stock: Option<i64>,
}

fn default_true() -> bool {
    true
}

/// A product as stored, with its stock.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ProductView {
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    pub unit_price_minor: i64,
    pub currency: String,
    pub active: bool,
    pub available: i64,
}

/// Body of `PUT /products/{id}/stock`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockInput {
    /// Units on hand, 0 to 10^9.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    #[serde(deserialize_with = "json_int")]
    pub available: i64,
}

const MAX_STOCK: i64 = 1_000_000_000;
/// Longest email, in characters as sent (the OpenAPI `maxLength`).
pub const MAX_EMAIL_CHARS: usize = 254;

struct ValidCustomer {
    name: Text,
    email: Email,
}

fn validate_customer(input: &CustomerInput) -> ApiResult<ValidCustomer> {
    let mut errors = Vec::new();
    let name = Text::parse(&input.name, 200).map_err(|e| errors.push(field("name", e)));
    // The published `maxLength` counts the string as sent, surrounding
    // whitespace included (what `Email::parse` trims first).
    let email = if input.email.chars().count() > MAX_EMAIL_CHARS {
        errors.push(field(
            "email",
            format!("at most {MAX_EMAIL_CHARS} characters"),
        ));
        Err(())
    } else {
        Email::parse(&input.email).map_err(|e| errors.push(field("email", e)))
    };
    match (name, email) {
        (Ok(name), Ok(email)) if errors.is_empty() => Ok(ValidCustomer { name, email }),
        _ => Err(ApiError::Validation(errors)),
    }
}

struct ValidProduct {
    sku: Sku,
    name: Text,
    price: Money,
    active: bool,
    stock: i64,
}

fn validate_product(input: &ProductInput) -> ApiResult<ValidProduct> {
    let mut errors = Vec::new();
    let sku = Sku::parse(&input.sku).map_err(|e| errors.push(field("sku", e)));
    let name = Text::parse(&input.name, 200).map_err(|e| errors.push(field("name", e)));
    let currency = Currency::parse(&input.currency).map_err(|e| errors.push(field("currency", e)));
    let stock = input.stock.unwrap_or(0);
    if !(0..=MAX_STOCK).contains(&stock) {
        errors.push(field("stock", format!("must be between 0 and {MAX_STOCK}")));
    }
    let price = currency
        .ok()
        .map(|c| Money::new(input.unit_price_minor, c))
        .transpose()
        .map_err(|e| errors.push(field("unit_price_minor", e)));
    match (sku, name, price) {
        (Ok(sku), Ok(name), Ok(Some(price))) if errors.is_empty() => Ok(ValidProduct {
            sku,
            name,
            price,
            active: input.active,
            stock,
        }),
        _ => Err(ApiError::Validation(errors)),
    }
}

fn field(name: &str, message: impl ToString) -> FieldError {
    FieldError {
        field: name.to_owned(),
        message: message.to_string(),
    }
}

fn stored_created<T: Serialize>(view: &T, location: String) -> StoredResponse {
    StoredResponse::json(StatusCode::CREATED, view).location(location)
}

/// `POST /customers`
#[utoipa::path(post, path = "/customers", tag = "catalog",
    request_body = CustomerInput,
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, description = "1 to 255 visible ASCII characters; a retry with the same key and body returns the first response (`Idempotent-Replayed: true`)")),
    responses((status = 201, body = CustomerView, description = "Created; `Location` names the customer"),
        (status = 400, description = "`malformed-json`; `invalid-header`: a malformed Idempotency-Key", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: a customer with this email exists", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 413, description = "`payload-too-large`: a body over 64 KiB", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 415, description = "`unsupported-media-type`: a body that is not application/json", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "`invalid-body` (wrong type, unknown or missing field), `validation` (per field), `idempotency-key-reused`", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 500, description = "`internal`: a database failure (details only in the log)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub async fn create_customer(
    State(state): State<AppState>,
    actor: Actor,
    key: IdempotencyKey,
    body: ApiJson<CustomerInput>,
) -> ApiResult<Response> {
    allow(&actor, Action::Catalog)?;
    let valid = validate_customer(&body.value)?;
    let print = fingerprint("POST", "/customers", &body.bytes);
    state
        .execute(&actor, &key, &print, async move |tx| {
            let view: CustomerView = sqlx::query_as(
            "INSERT INTO customers (id, name, email) VALUES ($1, $2, $3) RETURNING id, name, email",
        )
        .bind(Uuid::now_v7())
        .bind(valid.name.as_str())
        .bind(valid.email.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(constraint_conflict)?;
            let location = format!("/customers/{}", view.id);
            Ok(stored_created(&view, location))
        })
        .await
}

/// `PUT /customers/{id}`
#[utoipa::path(put, path = "/customers/{id}", tag = "catalog",
    request_body = CustomerInput,
    params(("id" = Uuid, Path, description = "Customer id")),
    responses((status = 200, body = CustomerView, description = "Updated"),
        (status = 400, description = "`malformed-json`; `invalid-id`", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not-found`: no such customer", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: another customer has this email", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 413, description = "`payload-too-large`: a body over 64 KiB", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 415, description = "`unsupported-media-type`: a body that is not application/json", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "`invalid-body`, `validation`", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 500, description = "`internal`: a database failure (details only in the log)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub async fn update_customer(
    State(state): State<AppState>,
    actor: Actor,
    IdPath(id): IdPath,
    body: ApiJson<CustomerInput>,
) -> ApiResult<Json<CustomerView>> {
    allow(&actor, Action::Catalog)?;
    let valid = validate_customer(&body.value)?;
    let view: Option<CustomerView> = sqlx::query_as(
        "UPDATE customers SET name = $2, email = $3, updated_at = now() WHERE id = $1 \
         RETURNING id, name, email",
    )
    .bind(id)
    .bind(valid.name.as_str())
    .bind(valid.email.as_str())
    .fetch_optional(&state.pool)
    .await
    .map_err(constraint_conflict)?;
    view.map(Json).ok_or(ApiError::NotFound("customer"))
}

/// `POST /products`
#[utoipa::path(post, path = "/products", tag = "catalog",
    request_body = ProductInput,
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, description = "1 to 255 visible ASCII characters; a retry with the same key and body returns the first response (`Idempotent-Replayed: true`)")),
    responses((status = 201, body = ProductView, description = "Created; `Location` names the product"),
        (status = 400, description = "`malformed-json`; `invalid-header`: a malformed Idempotency-Key", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: a product with this SKU exists", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 413, description = "`payload-too-large`: a body over 64 KiB", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 415, description = "`unsupported-media-type`: a body that is not application/json", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "`invalid-body`, `validation`, `idempotency-key-reused`", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 500, description = "`internal`: a database failure (details only in the log)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub async fn create_product(
    State(state): State<AppState>,
    actor: Actor,
    key: IdempotencyKey,
    body: ApiJson<ProductInput>,
) -> ApiResult<Response> {
    allow(&actor, Action::Catalog)?;
    let valid = validate_product(&body.value)?;
    let print = fingerprint("POST", "/products", &body.bytes);
    state
        .execute(&actor, &key, &print, async move |tx| {
            let view: ProductView = sqlx::query_as(include_str!("sql/product_insert.sql"))
                .bind(Uuid::now_v7())
                .bind(valid.sku.as_str())
                .bind(valid.name.as_str())
                .bind(valid.price.minor)
                .bind(valid.price.currency.as_str())
                .bind(valid.active)
                .bind(valid.stock)
                .fetch_one(&mut *tx)
                .await
                .map_err(constraint_conflict)?;
            let location = format!("/products/{}", view.id);
            Ok(stored_created(&view, location))
        })
        .await
}

/// `PUT /products/{id}`
#[utoipa::path(put, path = "/products/{id}", tag = "catalog",
    request_body = ProductInput,
    params(("id" = Uuid, Path, description = "Product id")),
    responses((status = 200, body = ProductView, description = "Updated"),
        (status = 400, description = "`malformed-json`; `invalid-id`", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not-found`: no such product", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: another product has this SKU", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 413, description = "`payload-too-large`: a body over 64 KiB", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 415, description = "`unsupported-media-type`: a body that is not application/json", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "`invalid-body`, `validation`", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 500, description = "`internal`: a database failure (details only in the log)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub async fn update_product(
    State(state): State<AppState>,
    actor: Actor,
    IdPath(id): IdPath,
    body: ApiJson<ProductInput>,
) -> ApiResult<Json<ProductView>> {
    allow(&actor, Action::Catalog)?;
    let valid = validate_product(&body.value)?;
    let view: Option<ProductView> = sqlx::query_as(include_str!("sql/product_update.sql"))
        .bind(id)
        .bind(valid.sku.as_str())
        .bind(valid.name.as_str())
        .bind(valid.price.minor)
        .bind(valid.price.currency.as_str())
        .bind(valid.active)
        .fetch_optional(&state.pool)
        .await
        .map_err(constraint_conflict)?;
    view.map(Json).ok_or(ApiError::NotFound("product"))
}

/// `PUT /products/{id}/stock`
#[utoipa::path(put, path = "/products/{id}/stock", tag = "catalog",
    request_body = StockInput,
    params(("id" = Uuid, Path, description = "Product id")),
    responses((status = 200, body = ProductView, description = "Stock set"),
        (status = 400, description = "`malformed-json`; `invalid-id`", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not-found`: no such product", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 413, description = "`payload-too-large`: a body over 64 KiB", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 415, description = "`unsupported-media-type`: a body that is not application/json", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "`invalid-body`, `validation`", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 500, description = "`internal`: a database failure (details only in the log)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub async fn set_stock(
    State(state): State<AppState>,
    actor: Actor,
    IdPath(id): IdPath,
    body: ApiJson<StockInput>,
) -> ApiResult<Json<ProductView>> {
    allow(&actor, Action::Catalog)?;
    let available = body.value.available;
    if !(0..=MAX_STOCK).contains(&available) {
        return Err(ApiError::field(
            "available",
            format!("must be between 0 and {MAX_STOCK}"),
        ));
    }
    let view: Option<ProductView> = sqlx::query_as(include_str!("sql/stock_set.sql"))
        .bind(id)
        .bind(available)
        .fetch_optional(&state.pool)
        .await?;
    view.map(Json).ok_or(ApiError::NotFound("product"))
}
