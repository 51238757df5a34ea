//! The one mapping from command errors to HTTP problems.
//!
//! Each kind has a stable problem `type` slug that clients can switch on.
//! Database faults are logged with their cause and answered as a bare 500;
//! constraint violations that a client can cause map to 409/422 by
//! constraint name.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use orderflow_domain::DomainError;
use orderflow_service::Problem;
use serde::Serialize;

/// One invalid field of a request body.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON path of the field, e.g. `lines[2].quantity`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("request body does not match the expected shape: {0}")]
    InvalidBody(String),
    #[error("unsupported content type")]
    UnsupportedMediaType,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("invalid fields")]
    Validation(Vec<FieldError>),
    /// Well-formed address fields naming what does not exist (an
    /// unassigned country, a region of another country).
    #[error("address rejected")]
    AddressRejected(Vec<FieldError>),
    #[error("invalid id {0:?}")]
    InvalidId(String),
    #[error("invalid header {name}: {reason}")]
    InvalidHeader {
        name: &'static str,
        reason: &'static str,
    },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("unknown {what} {id}")]
    UnknownReference { what: &'static str, id: uuid::Uuid },
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("version mismatch: current version is {current}")]
    VersionMismatch { current: i64 },
    #[error("idempotency key reused with a different request")]
    IdempotencyMismatch,
    #[error("{0}")]
    Conflict(&'static str),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("outbox error: {0}")]
    Outbox(#[from] orderflow_outbox::Error),
    #[error("injected fault at {0}")]
    InjectedFault(&'static str),
    #[error(transparent)]
    Auth(#[from] orderflow_service::auth::Rejection),
}

impl ApiError {
    /// A single-field validation error.
    pub fn field(field: impl Into<String>, message: impl ToString) -> Self {
        Self::Validation(vec![FieldError {
            field: field.into(),
            message: message.to_string(),
        }])
    }

    /// The problem answered to the client.
    pub fn to_problem(&self) -> Problem {
        use StatusCode as S;
        match self {
            Self::MalformedJson(detail) => {
                Problem::new(S::BAD_REQUEST, "malformed-json", "Malformed JSON").detail(detail)
            }
            Self::InvalidBody(detail) => Problem::new(
                S::UNPROCESSABLE_ENTITY,
                "invalid-body",
                "Invalid request body",
            )
            .detail(detail),
            Self::UnsupportedMediaType => Problem::new(
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            )
            .detail("send the body as application/json"),
            Self::PayloadTooLarge => Problem::new(
                S::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Request body too large",
            )
            .detail("the body limit is 64 KiB"),
            Self::Validation(errors) => {
                Problem::new(S::UNPROCESSABLE_ENTITY, "validation", "Invalid fields")
                    .detail("one or more fields are invalid")
                    .with("errors", serde_json::to_value(errors).unwrap_or_default())
            }
            Self::AddressRejected(errors) => {
                Problem::new(S::UNPROCESSABLE_ENTITY, "address-rejected", "Address rejected")
                    .detail("the shipping address names a country or region that does not exist or does not belong together")
                    .with("errors", serde_json::to_value(errors).unwrap_or_default())
            }
            Self::InvalidId(raw) => Problem::new(S::BAD_REQUEST, "invalid-id", "Invalid id")
                .detail(format!("{:?} is not a UUID", truncate(raw))),
            Self::InvalidHeader { name, reason } => {
                Problem::new(S::BAD_REQUEST, "invalid-header", "Invalid header")
                    .detail(format!("{name}: {reason}"))
            }
            Self::NotFound(what) => Problem::new(S::NOT_FOUND, "not-found", "Not found")
                .detail(format!("{what} not found")),
            Self::UnknownReference { what, id } => Problem::new(
                S::UNPROCESSABLE_ENTITY,
                "unknown-reference",
                "Unknown reference",
            )
            .detail(format!("{what} {id} does not exist")),
            Self::Domain(e) => domain_problem(e),
            Self::VersionMismatch { current } => Problem::new(
                S::PRECONDITION_FAILED,
                "version-mismatch",
                "The order has changed",
            )
            .detail(format!(
                "If-Match does not match; the current version is {current}"
            ))
            .with("current_version", *current),
            Self::IdempotencyMismatch => Problem::new(
                S::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused",
            )
            .detail("this Idempotency-Key was used for a different request"),
            Self::Conflict(detail) => {
                Problem::new(S::CONFLICT, "conflict", "Conflict").detail(*detail)
            }
            Self::Auth(rejection) => rejection.to_problem(),
            // The write database down, restarting or out of disk: nothing
            // was written, and the same request may succeed shortly.
            Self::Database(e) | Self::Outbox(orderflow_outbox::Error::Database(e))
                if orderflow_service::stores::postgres::unavailable(e) =>
            {
                Problem::unavailable(
                    "The write database cannot take the change right now; nothing was \
                     written. Retry shortly (with the same Idempotency-Key).",
                )
            }
            Self::Database(_) | Self::Outbox(_) | Self::InjectedFault(_) => Problem::internal(),
        }
    }
}

fn truncate(raw: &str) -> String {
    raw.chars().take(64).collect()
}

fn domain_problem(e: &DomainError) -> Problem {
    use StatusCode as S;
    let detail = e.to_string();
    match e {
        DomainError::InvalidTransition { current, .. } => Problem::new(
            S::CONFLICT,
            "invalid-transition",
            "Not allowed in the current state",
        )
        .detail(detail)
        .with("current_state", current.as_str()),
        DomainError::NotFound => {
            Problem::new(S::NOT_FOUND, "not-found", "Not found").detail(detail)
        }
        DomainError::AlreadyExists => {
            Problem::new(S::CONFLICT, "already-exists", "Already exists").detail(detail)
        }
        DomainError::InsufficientStock {
            product_id,
            requested,
            available,
        } => Problem::new(S::CONFLICT, "insufficient-stock", "Insufficient stock")
            .detail(detail)
            .with("product_id", product_id.to_string())
            .with("requested", *requested)
            .with("available", *available),
        DomainError::CorruptHistory(_) => Problem::internal(),
        DomainError::NoLines
        | DomainError::TooManyLines { .. }
        | DomainError::DuplicateProduct(_)
        | DomainError::ProductInactive(_)
        | DomainError::MixedCurrencies
        | DomainError::TotalTooLarge => {
            Problem::new(S::UNPROCESSABLE_ENTITY, "order-rejected", "Order rejected").detail(detail)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.to_problem();
        if problem.status_code().is_server_error() {
            tracing::error!(error = ?self, "order_command.request failed");
        }
        problem.into_response()
    }
}

/// Maps a unique/check violation the client can cause to a 409; anything
/// else stays a database error (500).
pub fn constraint_conflict(err: sqlx::Error) -> ApiError {
    let constraint = err
        .as_database_error()
        .and_then(|e| e.constraint())
        .unwrap_or_default();
    match constraint {
        "customers_email_key" => ApiError::Conflict("a customer with this email already exists"),
        "products_sku_key" => ApiError::Conflict("a product with this SKU already exists"),
        "stock_available_check" => ApiError::Conflict("not enough stock"),
        _ => ApiError::Database(err),
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
