//! The command API's router and shared state.

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use orderflow_service::auth::Auth;
use sqlx::{PgConnection, PgPool};

use crate::error::ApiResult;
use crate::extract::{Actor, IdempotencyKey};
use crate::idempotency::{self, StoredResponse};
use crate::{catalog, orders};

/// Largest request body accepted (64 KiB): an order of 100 lines is ~10 KiB.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// How long an Idempotency-Key is remembered.
    pub idempotency_ttl: Duration,
}

impl AppState {
    /// Runs a command in one transaction under the request's optional
    /// Idempotency-Key (see [`crate::idempotency::run`]) and answers with its
    /// stored response.
    pub async fn execute<F>(
        &self,
        actor: &Actor,
        key: &IdempotencyKey,
        fingerprint: &[u8],
        command: F,
    ) -> ApiResult<Response>
    where
        F: for<'c> AsyncFnOnce(&'c mut PgConnection) -> ApiResult<StoredResponse>,
    {
        let principal = actor.principal();
        let key = key.0.as_deref();
        idempotency::run(
            &self.pool,
            self.idempotency_ttl,
            &principal,
            key,
            fingerprint,
            command,
        )
        .await
        .map(IntoResponse::into_response)
    }
}

/// The command API behind `auth` (without the ops endpoints, which stay
/// open): every route, the fallbacks too, needs a verified token.
pub fn api(state: AppState, auth: &Auth) -> Router {
    auth.layer(routes(state))
}

/// The command API with authentication disabled: every caller is
/// anonymous staff. Only for in-process benchmarks; services use [`api`].
pub fn router(state: AppState) -> Router {
    api(state, &Auth::disabled())
}

fn routes(state: AppState) -> Router {
    Router::new()
        .route("/customers", post(catalog::create_customer))
        .route("/customers/{id}", put(catalog::update_customer))
        .route("/products", post(catalog::create_product))
        .route("/products/{id}", put(catalog::update_product))
        .route("/products/{id}/stock", put(catalog::set_stock))
        .route("/orders", post(orders::place_order))
        .route("/orders/{id}/pay", post(orders::pay_order))
        .route("/orders/{id}/ship", post(orders::ship_order))
        .route("/orders/{id}/deliver", post(orders::deliver_order))
        .route("/orders/{id}/cancel", post(orders::cancel_order))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

async fn not_found() -> orderflow_service::Problem {
    orderflow_service::Problem::new(axum::http::StatusCode::NOT_FOUND, "not-found", "Not found")
        .detail("no such endpoint")
}

async fn method_not_allowed() -> orderflow_service::Problem {
    orderflow_service::Problem::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
    )
}
