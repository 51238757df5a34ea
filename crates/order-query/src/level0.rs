//! Level 0 for comparison: the same summary computed by joining the
//! normalised write tables on every request. Off unless `LEVEL0_ENDPOINTS`
//! is set; it exists so the benchmark can show what the read model saves.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::app::{AppState, Source};
use crate::error::{QueryError, QueryResult};
use crate::params::{OrderPath, RawParams};

/// `GET /level0/orders/{id}`
pub async fn get_order(
    State(state): State<AppState>,
    OrderPath(id): OrderPath,
) -> QueryResult<Response> {
    let found = orderflow_writemodel::readback::summaries(&state.write, Some(&[id]))
        .await
        .map_err(|e| QueryError::Unavailable(e.to_string()))?
        .pop()
        .ok_or(QueryError::NotFound)?;
    Ok((
        state.staleness(Source::WriteDb, Some(found.version)),
        Json(found),
    )
        .into_response())
}

/// `GET /level0/orders?limit=`: the newest orders, joined.
pub async fn recent_orders(
    State(state): State<AppState>,
    params: RawParams,
) -> QueryResult<Response> {
    params.only(&["limit"])?;
    let items = orderflow_writemodel::readback::recent(&state.write, params.limit()?)
        .await
        .map_err(|e| QueryError::Unavailable(e.to_string()))?;
    Ok((
        state.staleness(Source::WriteDb, None),
        Json(serde_json::json!({"items": items})),
    )
        .into_response())
}
