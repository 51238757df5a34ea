//! The query API's state, router and staleness headers.

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue};
use axum::routing::get;
use elasticsearch::Elasticsearch;
use orderflow_service::auth::{Auth, Slots};
use sqlx::PgPool;

use crate::lag::Lag;
use crate::notify::Notifier;
use crate::{level0, search, status, summary};

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub read: PgPool,
    /// Read-only (every transaction READ ONLY) pool on the write database.
    pub write: PgPool,
    /// Connected on first use; reconnects by itself afterwards.
    pub redis: std::sync::Arc<tokio::sync::OnceCell<redis::aio::ConnectionManager>>,
    pub redis_client: redis::Client,
    pub redis_prefix: String,
    pub search: Elasticsearch,
    pub alias: String,
    pub notifier: Notifier,
    pub lag: Lag,
    pub groups: Groups,
    /// How long a `min_version` read waits before answering 503.
    pub consistency_wait: Duration,
    /// Heartbeat interval of the SSE stream.
    pub heartbeat: Duration,
    pub level0: bool,
    /// Concurrent `min_version` waits per token subject.
    pub waits: Slots,
    /// Concurrent status streams per token subject.
    pub streams: Slots,
}

/// The consumer group of each read model's projector.
#[derive(Debug, Clone)]
pub struct Groups {
    pub summary: String,
    pub search: String,
    pub status: String,
}

/// Which store answered.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    Summary,
    Search,
    Cache,
    WriteDb,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Summary => "summary",
            Self::Search => "search",
            Self::Cache => "cache",
            Self::WriteDb => "write-db",
        }
    }
}

impl AppState {
    /// A Redis connection, or `None` while Redis is unreachable (callers
    /// fall back to the summary).
    pub async fn redis(&self) -> Option<redis::aio::ConnectionManager> {
        let client = self.redis_client.clone();
        self.redis
            .get_or_try_init(|| async move {
                tokio::time::timeout(
                    Duration::from_secs(1),
                    redis::aio::ConnectionManager::new(client),
                )
                .await
                .map_err(|_| ())?
                .map_err(|_| ())
            })
            .await
            .ok()
            .cloned()
    }

    /// `Orderflow-Source`, `Orderflow-Version` (when one order is returned)
    /// and `Orderflow-Projector-Lag` (events the read model's projector has
    /// not applied yet, when measured).
    pub fn staleness(&self, source: Source, version: Option<i64>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            "orderflow-source",
            HeaderValue::from_static(source.as_str()),
        );
        if let Some(v) = version {
            headers.insert("orderflow-version", HeaderValue::from(v));
            if let Ok(tag) = HeaderValue::from_str(&format!("\"{v}\"")) {
                headers.insert(axum::http::header::ETAG, tag);
            }
        }
        let group = match source {
            Source::Summary => Some(&self.groups.summary),
            Source::Search => Some(&self.groups.search),
            Source::Cache => Some(&self.groups.status),
            Source::WriteDb => None,
        };
        if let Some(lag) = group.and_then(|g| self.lag.get(g)) {
            headers.insert("orderflow-projector-lag", HeaderValue::from(lag));
        }
        headers
    }
}

/// The query API behind `auth` (without the ops endpoints, which stay
/// open): every route, the fallbacks too, needs a verified token.
pub fn api(state: AppState, auth: &Auth) -> Router {
    auth.layer(routes(state))
}

fn routes(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/orders", get(summary::list_orders))
        .route("/orders/search", get(search::search_orders))
        .route("/orders/{id}", get(summary::get_order))
        .route("/orders/{id}/status", get(status::get_status))
        .route("/orders/{id}/status/stream", get(status::stream_status));
    if state.level0 {
        router = router
            .route("/level0/orders", get(level0::recent_orders))
            .route("/level0/orders/{id}", get(level0::get_order));
    }
    router
        .fallback(|| async {
            orderflow_service::Problem::new(
                axum::http::StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
            )
            .detail("no such endpoint")
        })
        .method_not_allowed_fallback(|| async {
            orderflow_service::Problem::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            )
        })
        .with_state(state)
}
