//! The OpenAPI document of the query API, generated from the handlers;
//! `proto/openapi/order-query.json` is the checked-in copy.

use utoipa::OpenApi;

/// The problem+json shape of every error (RFC 9457).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ProblemDoc {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: Option<String>,
    /// On `invalid-parameter`: which one.
    pub parameter: Option<String>,
    /// On `not-yet-visible`: the version asked for and the one visible.
    pub wanted_version: Option<i64>,
    pub visible_version: Option<i64>,
}

/// The document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "orderflow query API", version = "1",
        description = "Reads over the read models. Pass the version a command returned as min_version to read your own write; consistency=strong reads the write database. Responses carry Orderflow-Source, Orderflow-Version and Orderflow-Projector-Lag headers. Errors are application/problem+json."),
    paths(
        crate::summary::get_order, crate::summary::list_orders, crate::search::search_orders,
        crate::status::get_status, crate::status::stream_status,
    ),
    tags((name = "orders"), (name = "status")),
)]
pub struct ApiDoc;

/// The document as pretty JSON, as checked in.
pub fn json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default() + "\n"
}
