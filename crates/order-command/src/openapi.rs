//! The OpenAPI document of the command API, generated from the handlers'
//! annotations. `proto/openapi/order-command.json` is the checked-in copy; a
//! test fails when it differs from what the code generates.

use utoipa::OpenApi;

/// The problem+json shape of every error (RFC 9457).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ProblemDoc {
    /// Stable URI of the error kind, e.g. `https://orderflow.dev/problems/validation`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: Option<String>,
    /// On `validation` problems: each invalid field.
    pub errors: Option<Vec<crate::error::FieldError>>,
    /// On `invalid-transition` problems: the order's state.
    pub current_state: Option<String>,
    /// On `version-mismatch` problems.
    pub current_version: Option<i64>,
}

/// The document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "orderflow command API", version = "1",
        description = "Commands that change customers, products, stock and orders. Errors are application/problem+json. POSTs accept an Idempotency-Key."),
    paths(
        crate::catalog::create_customer, crate::catalog::update_customer,
        crate::catalog::create_product, crate::catalog::update_product, crate::catalog::set_stock,
        crate::orders::place::place_order, crate::orders::transition::pay_order, crate::orders::transition::ship_order,
        crate::orders::transition::deliver_order, crate::orders::transition::cancel_order,
    ),
    tags((name = "catalog"), (name = "orders")),
)]
pub struct ApiDoc;

/// The document as pretty JSON, as checked in.
pub fn json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default() + "\n"
}
