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
    /// On `version-not-reached`: the order's latest version.
    pub current_version: Option<i64>,
}

/// `consistency`: where a single-order read comes from.
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Consistency {
    /// The summary read model (default).
    Eventual,
    /// The write database, read-only.
    Strong,
}

/// `status`: the orders in one state.
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum StatusFilter {
    Placed,
    Paid,
    Shipped,
    Delivered,
    Cancelled,
}

/// `sales_channel`: the orders placed through one channel.
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum SalesChannelFilter {
    Web,
    MobileApp,
    Store,
    Marketplace,
    Phone,
}

/// Puts the search text's rule on `q`, written once with the command API's.
#[derive(Debug)]
pub struct Constraints;

impl utoipa::Modify for Constraints {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let pattern =
            orderflow_service::openapi::text_pattern(crate::params::MAX_QUERY_CHARS, true);
        orderflow_service::openapi::set_parameter_pattern(doc, "q", &pattern);
        orderflow_service::auth::openapi::document(doc, &[]);
    }
}

/// The document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "orderflow query API", version = "1",
        description = "Reads over the read models. Pass the version a command returned as min_version to read your own write: the read waits (bounded) for it, then answers 503 not-yet-visible with Retry-After if the change is accepted but not visible yet, 404 if the order does not exist and 422 version-not-reached if the order never had that version; consistency=strong reads the write database. Responses carry Orderflow-Source, Orderflow-Version and Orderflow-Projector-Lag headers. Unknown or repeated parameters are 400 invalid-parameter. Every operation needs a bearer token (JWT): a `customer` token (subject = the customer id) sees only its own orders (another customer's order is 404 as if it did not exist; lists and search are confined to the subject whatever the parameters say); `staff` and `service` see every order. Each subject has a request rate and a bound on concurrent min_version waits and status streams (429 with Retry-After). Errors are application/problem+json with a stable `type` (https://orderflow.dev/problems/<kind>)."),
    paths(
        crate::summary::get_order, crate::summary::list_orders, crate::search::search_orders,
        crate::status::get_status, crate::status::stream_status,
    ),
    modifiers(&Constraints),
    tags((name = "orders"), (name = "status")),
)]
pub struct ApiDoc;

/// The document as pretty JSON, as checked in.
pub fn json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default() + "\n"
}
