//! The OpenAPI document of the command API, generated from the handlers'
//! annotations. `proto/openapi/order-command.json` is the checked-in copy; a
//! test fails when it differs from what the code generates.
//!
//! The document says what the server enforces. Ranges, item counts and
//! statuses are in the handlers' annotations; the text rules, whose exact
//! regular expressions are long, are written once (`orderflow_service::openapi`
//! and here) and put on the fields and headers by [`Constraints`]. The
//! patterns use only syntax that ECMA-262 and Python's `re` (what
//! schemathesis generates from) read alike.

use orderflow_service::openapi::{SPACE_SEPARATORS, WHITESPACE};
pub use orderflow_service::openapi::{set_parameter_pattern, text_pattern};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::{OpenApi as Document, RefOr};
use utoipa::{Modify, OpenApi};

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

/// `orderflow_domain::Email`: `local@domain`, no whitespace or control
/// character inside, the domain with a dot that is neither first nor last
/// (at most 254 characters as sent, whitespace included: `maxLength`).
pub fn email_pattern() -> String {
    let part = format!(r"[^@\x00-\x20\x7f-\x9f{SPACE_SEPARATORS}]");
    let edge = format!(r"[^@.\x00-\x20\x7f-\x9f{SPACE_SEPARATORS}]");
    format!(r"^[{WHITESPACE}]*{part}+@{edge}{part}*\.{part}*{edge}[{WHITESPACE}]*$")
}

/// `count` characters of `class` (e.g. `A-Za-z`), whitespace around allowed.
fn trimmed(class: &str, count: &str) -> String {
    format!("^[{WHITESPACE}]*[{class}]{{{count}}}[{WHITESPACE}]*$")
}

/// `Idempotency-Key`: 1 to 255 visible ASCII characters.
pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]{1,255}$";
/// `If-Match`: `*`, or the order version (1 to 18 digits) as an ETag,
/// quoted or not, optionally weak (`W/"3"`).
pub const IF_MATCH_PATTERN: &str = r#"^(\*|(W/)?("[0-9]{1,18}"|[0-9]{1,18}))$"#;

/// A rule on one string field.
enum Rule {
    Text { max: usize, blank_ok: bool },
    Email,
    Pattern(String),
}

/// Puts the text rules on the body fields and headers.
#[derive(Debug)]
pub struct Constraints;

impl Modify for Constraints {
    fn modify(&self, doc: &mut Document) {
        let text = |max| Rule::Text {
            max,
            blank_ok: false,
        };
        let fields: [(&str, &str, Rule); 15] = [
            ("CustomerInput", "name", text(200)),
            ("CustomerInput", "email", Rule::Email),
            (
                "ProductInput",
                "sku",
                Rule::Pattern(trimmed("A-Za-z0-9._-", "1,64")),
            ),
            ("ProductInput", "name", text(200)),
            (
                "ProductInput",
                "currency",
                Rule::Pattern(trimmed("A-Za-z", "3")),
            ),
            ("AddressInput", "line1", text(200)),
            (
                "AddressInput",
                "line2",
                Rule::Text {
                    max: 200,
                    blank_ok: true,
                },
            ),
            ("AddressInput", "city", text(100)),
            ("AddressInput", "postal_code", text(20)),
            (
                "AddressInput",
                "country",
                Rule::Pattern(trimmed("A-Za-z", "2")),
            ),
            (
                "AddressInput",
                "region",
                Rule::Pattern(format!(
                    "^[{WHITESPACE}]*[A-Za-z]{{2}}-[A-Za-z0-9]{{1,3}}[{WHITESPACE}]*$"
                )),
            ),
            ("PayInput", "payment_reference", text(100)),
            ("ShipInput", "carrier", text(100)),
            ("ShipInput", "tracking_number", text(100)),
            ("CancelInput", "reason", text(500)),
        ];
        for (schema, field, rule) in fields {
            let Some(property) = property(doc, schema, field) else {
                panic!("OpenAPI constraints name {schema}.{field}, which the document lacks");
            };
            match rule {
                Rule::Text { max, blank_ok } => {
                    property.pattern = Some(text_pattern(max, blank_ok))
                }
                Rule::Email => {
                    property.pattern = Some(email_pattern());
                    property.max_length = Some(crate::catalog::MAX_EMAIL_CHARS);
                }
                Rule::Pattern(p) => property.pattern = Some(p),
            }
        }
        // `POST /orders/{id}/pay` takes no body as well as a `PayInput`.
        if let Some(body) = doc
            .paths
            .paths
            .get_mut("/orders/{id}/pay")
            .and_then(|item| item.post.as_mut())
            .and_then(|operation| operation.request_body.as_mut())
        {
            body.required = Some(utoipa::openapi::Required::False);
        }
        for (name, pattern) in [
            ("Idempotency-Key", IDEMPOTENCY_KEY_PATTERN),
            ("If-Match", IF_MATCH_PATTERN),
        ] {
            set_parameter_pattern(doc, name, pattern);
        }
        let catalog = "only staff tokens may change customers, products and stock";
        let fulfil = "only staff and service tokens may ship and deliver";
        orderflow_service::auth::openapi::document(
            doc,
            &[
                ("/customers", "post", catalog),
                ("/customers/{id}", "put", catalog),
                ("/products", "post", catalog),
                ("/products/{id}", "put", catalog),
                ("/products/{id}/stock", "put", catalog),
                (
                    "/orders",
                    "post",
                    "a customer token names another customer_id",
                ),
                ("/orders/{id}/ship", "post", fulfil),
                ("/orders/{id}/deliver", "post", fulfil),
            ],
        );
    }
}

/// The object schema of `schema.field` in the components.
fn property<'d>(
    doc: &'d mut Document,
    schema: &str,
    field: &str,
) -> Option<&'d mut utoipa::openapi::schema::Object> {
    let components = doc.components.as_mut()?;
    let RefOr::T(Schema::Object(object)) = components.schemas.get_mut(schema)? else {
        return None;
    };
    match object.properties.get_mut(field)? {
        RefOr::T(Schema::Object(property)) => Some(property),
        _ => None,
    }
}

/// The document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "orderflow command API", version = "1",
        description = "Commands that change customers, products, stock and orders. Errors are application/problem+json with a stable `type` (https://orderflow.dev/problems/<kind>). Text fields are trimmed of surrounding whitespace before their length is counted and may hold no control character; each field's `pattern` says exactly what is accepted. Any POST accepts an Idempotency-Key: a retry with the same key and body returns the first response; the same key with another request is 422 `idempotency-key-reused`. Bodies are at most 64 KiB (413) and must be application/json (415). Every operation needs a bearer token (JWT): `customer` tokens (subject = the customer id) place, pay and cancel their own orders, where another customer's order is 404 as if it did not exist; `staff` may do everything; `service` (machines) every order command but not the catalog. Idempotency keys are scoped by the token's subject; each subject has a request rate (429 with Retry-After)."),
    paths(
        crate::catalog::create_customer, crate::catalog::update_customer,
        crate::catalog::create_product, crate::catalog::update_product, crate::catalog::set_stock,
        crate::orders::place::place_order, crate::orders::transition::pay_order, crate::orders::transition::ship_order,
        crate::orders::transition::deliver_order, crate::orders::transition::cancel_order,
    ),
    modifiers(&Constraints),
    tags((name = "catalog"), (name = "orders")),
)]
pub struct ApiDoc;

/// The document as pretty JSON, as checked in.
pub fn json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default() + "\n"
}
