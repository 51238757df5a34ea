//! `GET /orders/{id}` and `GET /orders`: the summary read model.

use std::sync::LazyLock;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use orderflow_readmodel::OrderSummary;
use orderflow_readstore::summary::{COLUMNS, SummaryRow};
use orderflow_service::auth::Actor;
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::app::{AppState, Source};
use crate::error::{QueryError, QueryResult};
use crate::params::{Cursor, OrderPath, RawParams};

/// A page of orders, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderPage {
    /// Order summaries (as `GET /orders/{id}` returns them).
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<OrderSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The summary row of `order`, if any.
pub async fn load(state: &AppState, order: Uuid) -> QueryResult<Option<OrderSummary>> {
    static BY_ID: LazyLock<String> =
        LazyLock::new(|| format!("SELECT {COLUMNS} FROM order_summary s WHERE s.order_id = $1"));
    let row: Option<SummaryRow> = sqlx::query_as(BY_ID.as_str())
        .bind(order)
        .fetch_optional(&state.read)
        .await?;
    Ok(row.map(OrderSummary::from))
}

/// Reads the summary, waiting (by notification) up to the consistency bound
/// for `min_version` when given.
pub async fn load_at_least(
    state: &AppState,
    order: Uuid,
    min_version: Option<i64>,
) -> QueryResult<Option<OrderSummary>> {
    let Some(wanted) = min_version else {
        return load(state, order).await;
    };
    let mut changes = state.notifier.summary.subscribe();
    let deadline = tokio::time::Instant::now() + state.consistency_wait;
    loop {
        let current = load(state, order).await?;
        let have = current.as_ref().map(|s| s.version);
        if have.is_some_and(|v| v >= wanted) {
            return Ok(current);
        }
        // Wait for a change of this order to at least the wanted version.
        loop {
            match tokio::time::timeout_at(deadline, changes.recv()).await {
                Ok(Ok((id, version))) if id == order && version >= wanted => break,
                Ok(Ok(_)) => {}
                Ok(Err(RecvError::Lagged(_))) => break,
                Ok(Err(RecvError::Closed)) | Err(_) => {
                    // One last look: the change may have landed just now.
                    let last = load(state, order).await?;
                    if last.as_ref().is_some_and(|s| s.version >= wanted) {
                        return Ok(last);
                    }
                    return Err(not_visible(state, order, wanted, last.map(|s| s.version)).await);
                }
            }
        }
    }
}

/// What a `min_version` read answers once its bound has passed without the
/// read model showing the version. Only then is the write model asked
/// (read-only, one primary-key lookup), so that a token which can never
/// become visible is not told to retry: an order the write model does not
/// have is 404, a version beyond the write model's is 422
/// `version-not-reached`, and only an accepted change still on its way is
/// 503 `not-yet-visible` with `Retry-After`. When the write database cannot
/// be asked, the 503 stands: retrying is then the right advice either way.
pub async fn not_visible(
    state: &AppState,
    order: Uuid,
    wanted: i64,
    have: Option<i64>,
) -> QueryError {
    let latest: Result<Option<i64>, sqlx::Error> =
        sqlx::query_scalar("SELECT version FROM orders WHERE id = $1")
            .bind(order)
            .fetch_optional(&state.write)
            .await;
    match latest {
        Ok(None) => QueryError::NotFound,
        Ok(Some(latest)) if wanted > latest => QueryError::VersionNotReached { wanted, latest },
        Ok(Some(_)) => QueryError::NotYetVisible {
            wanted,
            have,
            retry_after_secs: retry_after(state.consistency_wait),
        },
        Err(err) => {
            tracing::warn!(error = %err, %order, "order_query.consistency write model not asked");
            QueryError::NotYetVisible {
                wanted,
                have,
                retry_after_secs: retry_after(state.consistency_wait),
            }
        }
    }
}

/// Whose order `order` is: the summary's customer, else the write model's
/// (the read model may not show a new order yet); `None` if neither has it.
async fn owner(state: &AppState, order: Uuid) -> QueryResult<Option<Uuid>> {
    let summary: Option<Uuid> =
        sqlx::query_scalar("SELECT customer_id FROM order_summary WHERE order_id = $1")
            .bind(order)
            .fetch_optional(&state.read)
            .await?;
    if summary.is_some() {
        return Ok(summary);
    }
    sqlx::query_scalar("SELECT customer_id FROM orders WHERE id = $1")
        .bind(order)
        .fetch_optional(&state.write)
        .await
        .map_err(|e| QueryError::Unavailable(e.to_string()))
}

/// Object-level authorization: a customer asking about an order that is
/// not theirs gets 404, exactly as for one that does not exist, before any
/// wait, version check or read. Staff and service see every order.
pub async fn authorize(state: &AppState, actor: &Actor, order: Uuid) -> QueryResult<()> {
    let Some(own) = actor.own_customer() else {
        return Ok(());
    };
    match owner(state, order).await? {
        Some(customer) if customer == own => Ok(()),
        _ => Err(QueryError::NotFound),
    }
}

pub fn retry_after(wait: Duration) -> u64 {
    wait.as_secs().clamp(1, 5)
}

/// `GET /orders/{id}`
#[utoipa::path(get, path = "/orders/{id}", tag = "orders",
    params(("id" = Uuid, Path),
        ("min_version" = Option<i64>, Query, minimum = 1, description = "The version a command returned: wait (bounded by CONSISTENCY_WAIT) until the read model reflects it"),
        ("consistency" = Option<crate::openapi::Consistency>, Query, description = "`eventual` (default) or `strong`: read the write database")),
    responses((status = 200, description = "The order summary; `Orderflow-Version`, `Orderflow-Source`, `Orderflow-Projector-Lag` headers. `sales_channel` is null and `shipping_address` has no `region` for orders placed before OrderPlaced v2 or without them (never guessed); `shipping_address` is `{lines, city, postal_code, region?, country}`", body = Object),
        (status = 400, description = "`invalid-id`; `invalid-parameter` (unknown, repeated or malformed, naming it)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not-found`: no such order (also with a token the write model never issued)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "`version-not-reached`: min_version is beyond the order's latest version (with `current_version`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "`not-yet-visible`: the change was accepted but is not visible within the bound (`Retry-After`); `unavailable`: the write database (strong reads)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 500, description = "`internal`: a read database failure (details only in the log)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub async fn get_order(
    State(state): State<AppState>,
    actor: Actor,
    OrderPath(id): OrderPath,
    params: RawParams,
) -> QueryResult<Response> {
    params.only(&["min_version", "consistency"])?;
    let min_version = params.min_version()?;
    authorize(&state, &actor, id).await?;
    let _slot = match min_version {
        Some(_) => Some(state.waits.acquire(&actor.principal())?),
        None => None,
    };
    if params.strong()? {
        let found = orderflow_writemodel::readback::summaries(&state.write, Some(&[id]))
            .await
            .map_err(|e| QueryError::Unavailable(e.to_string()))?
            .pop()
            .ok_or(QueryError::NotFound)?;
        if let Some(wanted) = min_version.filter(|w| *w > found.version) {
            return Err(QueryError::VersionNotReached {
                wanted,
                latest: found.version,
            });
        }
        let headers = state.staleness(Source::WriteDb, Some(found.version));
        return Ok((headers, Json(found)).into_response());
    }
    let found = load_at_least(&state, id, min_version)
        .await?
        .ok_or(QueryError::NotFound)?;
    let headers = state.staleness(Source::Summary, Some(found.version));
    Ok((headers, Json(found)).into_response())
}

/// `GET /orders`
#[utoipa::path(get, path = "/orders", tag = "orders",
    params(("customer_id" = Option<Uuid>, Query),
        ("status" = Option<crate::openapi::StatusFilter>, Query),
        ("placed_from" = Option<String>, Query, format = DateTime, description = "RFC 3339, inclusive"),
        ("placed_to" = Option<String>, Query, format = DateTime, description = "RFC 3339, exclusive"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 20"),
        ("cursor" = Option<String>, Query, pattern = r"^[0-9]{1,16}\.[0-9a-fA-F]{32}$", description = "`next_cursor` of the previous page")),
    responses((status = 200, body = OrderPage, description = "Newest first"),
        (status = 400, description = "`invalid-parameter` (unknown, repeated or malformed, naming it)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 500, description = "`internal`: a read database failure (details only in the log)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub async fn list_orders(
    State(state): State<AppState>,
    actor: Actor,
    params: RawParams,
) -> QueryResult<Response> {
    let list = params.list(&[])?;
    let limit = list.limit;
    // Only the filters given go into the statement: each combination is its
    // own prepared statement with its own plan. One statement with
    // `$1 IS NULL OR ...` for every filter can fall back to a generic plan
    // that walks the newest-first index for a customer's ten orders.
    let mut sql = sqlx::QueryBuilder::<sqlx::Postgres>::new(format!(
        "SELECT {COLUMNS} FROM order_summary s WHERE true"
    ));
    // A customer's list is theirs, whatever the parameters say: the
    // `customer_id` parameter can only narrow it further (to nothing).
    if let Some(own) = actor.own_customer() {
        sql.push(" AND s.customer_id = ").push_bind(own);
    }
    if let Some(customer) = list.customer_id {
        sql.push(" AND s.customer_id = ").push_bind(customer);
    }
    if let Some(status) = list.status {
        sql.push(" AND s.status = ").push_bind(status);
    }
    if let Some(from) = list.placed_from {
        sql.push(" AND s.placed_at >= ").push_bind(from);
    }
    if let Some(to) = list.placed_to {
        sql.push(" AND s.placed_at < ").push_bind(to);
    }
    if let Some(cursor) = list.cursor {
        sql.push(" AND (s.placed_at, s.order_id) < (")
            .push_bind(cursor.placed_at)
            .push(", ")
            .push_bind(cursor.order_id)
            .push(")");
    }
    // Newest first, keyset-paginated on (placed_at, order_id).
    sql.push(" ORDER BY s.placed_at DESC, s.order_id DESC LIMIT ")
        .push_bind(limit + 1);
    let rows: Vec<SummaryRow> = sql.build_query_as().fetch_all(&state.read).await?;
    let mut items: Vec<OrderSummary> = rows.into_iter().map(OrderSummary::from).collect();
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|s| {
            Cursor {
                placed_at: s.placed_at,
                order_id: s.order_id,
            }
            .encode()
        })
    } else {
        None
    };
    let headers = state.staleness(Source::Summary, None);
    Ok((headers, Json(OrderPage { items, next_cursor })).into_response())
}
