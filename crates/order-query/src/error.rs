//! The one mapping from query errors to HTTP problems.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use orderflow_service::Problem;

/// Everything a query can fail with.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    #[error("invalid id {0:?}")]
    InvalidId(String),
    #[error("order not found")]
    NotFound,
    #[error("version {wanted} not visible yet (have {have:?})")]
    NotYetVisible {
        wanted: i64,
        have: Option<i64>,
        retry_after_secs: u64,
    },
    /// A token beyond the write model's version: no command ever answered it.
    #[error("version {wanted} is beyond the order's latest version {latest}")]
    VersionNotReached { wanted: i64, latest: i64 },
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Auth(#[from] orderflow_service::auth::Rejection),
}

impl QueryError {
    pub fn param(name: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidParameter {
            name,
            reason: reason.into(),
        }
    }
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        use StatusCode as S;
        let problem = match &self {
            Self::InvalidParameter { name, reason } => {
                Problem::new(S::BAD_REQUEST, "invalid-parameter", "Invalid query parameter")
                    .detail(format!("{name}: {reason}"))
                    .with("parameter", *name)
            }
            Self::InvalidId(raw) => Problem::new(S::BAD_REQUEST, "invalid-id", "Invalid id")
                .detail(format!("{:?} is not a UUID", raw.chars().take(64).collect::<String>())),
            Self::NotFound => Problem::new(S::NOT_FOUND, "not-found", "Not found").detail("no such order"),
            Self::NotYetVisible { wanted, have, retry_after_secs } => Problem::new(
                S::SERVICE_UNAVAILABLE,
                "not-yet-visible",
                "The order's latest change is not visible yet",
            )
            .detail(format!(
                "Your change was accepted (version {wanted}) and will appear shortly; the read model \
                 shows {}. Retry after {retry_after_secs} s, or read with consistency=strong.",
                have.map_or_else(|| "nothing yet".to_owned(), |v| format!("version {v}"))
            ))
            .with("wanted_version", *wanted)
            .with("visible_version", *have)
            .header(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs)),
            Self::VersionNotReached { wanted, latest } => Problem::new(
                S::UNPROCESSABLE_ENTITY,
                "version-not-reached",
                "The order has not reached this version",
            )
            .detail(format!(
                "min_version {wanted} is beyond the order's latest version ({latest}); pass the \
                 version a command returned"
            ))
            .with("wanted_version", *wanted)
            .with("current_version", *latest),
            Self::Unavailable(_) => Problem::new(S::SERVICE_UNAVAILABLE, "unavailable", "Store unavailable")
                .detail("a read model store is not answering; retry shortly")
                .header(header::RETRY_AFTER, HeaderValue::from(1u64)),
            Self::Database(e) if orderflow_service::stores::postgres::unavailable(e) => {
                Problem::unavailable("a database is not answering; retry shortly")
            }
            Self::Auth(rejection) => rejection.to_problem(),
            Self::Database(_) => Problem::internal(),
        };
        if problem.status_code().is_server_error() {
            tracing::warn!(error = %self, "order_query.request failed");
        }
        problem.into_response()
    }
}

/// Result of a handler.
pub type QueryResult<T> = Result<T, QueryError>;
