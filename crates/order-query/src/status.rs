//! `GET /orders/{id}/status` (Redis, falling back to the summary) and
//! `GET /orders/{id}/status/stream` (server-sent events).

use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use orderflow_service::auth::{Actor, Slot};
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::app::{AppState, Source};
use crate::error::{QueryError, QueryResult};
use crate::notify::StatusChange;
use crate::params::{OrderPath, RawParams};
use crate::summary::{authorize, not_visible};

/// An order's status and where it came from.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StatusView {
    pub order_id: Uuid,
    pub status: String,
    pub version: i64,
    pub updated_at: String,
    /// `cache` (Redis) or `summary` (the fallback on a cache miss).
    pub source: &'static str,
}

/// The cached status, read through the generation pointer in one atomic
/// script, so a rebuild's swap can never send the read into a generation
/// it has just deleted.
async fn from_cache(state: &AppState, order: Uuid) -> Option<StatusView> {
    let mut conn = state.redis().await?;
    let (status, version, updated_at): (Option<String>, Option<i64>, Option<String>) =
        orderflow_readstore::status::READ
            .key(orderflow_readstore::status::generation_key(
                &state.redis_prefix,
            ))
            .arg(&state.redis_prefix)
            .arg(order.to_string())
            .invoke_async(&mut conn)
            .await
            .ok()?;
    Some(StatusView {
        order_id: order,
        status: status?,
        version: version?,
        updated_at: updated_at.unwrap_or_default(),
        source: "cache",
    })
}

async fn from_summary(state: &AppState, order: Uuid) -> QueryResult<Option<StatusView>> {
    Ok(crate::summary::load(state, order)
        .await?
        .map(|s| StatusView {
            order_id: order,
            status: s.status,
            version: s.version,
            updated_at: s
                .updated_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            source: "summary",
        }))
}

/// The freshest of cache and summary (the cache normally; the summary when
/// the cache misses or is behind).
async fn current(state: &AppState, order: Uuid) -> QueryResult<Option<StatusView>> {
    let cached = from_cache(state, order).await;
    let summary = from_summary(state, order).await?;
    Ok(match (cached, summary) {
        (Some(c), Some(s)) if s.version > c.version => Some(s),
        (Some(c), _) => Some(c),
        (None, s) => s,
    })
}

/// A status view with the staleness headers of the store it came from.
fn answer(state: &AppState, view: StatusView) -> Response {
    let source = if view.source == "cache" {
        Source::Cache
    } else {
        Source::Summary
    };
    (state.staleness(source, Some(view.version)), Json(view)).into_response()
}

/// `GET /orders/{id}/status`
#[utoipa::path(get, path = "/orders/{id}/status", tag = "status",
    params(("id" = Uuid, Path), ("min_version" = Option<i64>, Query, minimum = 1, description = "The version a command returned: wait (bounded by CONSISTENCY_WAIT) until the read model reflects it")),
    responses((status = 200, body = StatusView, description = "From the cache, or the summary on a miss"),
        (status = 400, description = "`invalid-id`; `invalid-parameter`", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not-found`: no such order (also with a token the write model never issued)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "`version-not-reached`: min_version is beyond the order's latest version (with `current_version`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "`not-yet-visible`: the change was accepted but is not visible within the bound (`Retry-After`)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 500, description = "`internal`: a read database failure (details only in the log)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub async fn get_status(
    State(state): State<AppState>,
    actor: Actor,
    OrderPath(id): OrderPath,
    params: RawParams,
) -> QueryResult<Response> {
    params.only(&["min_version"])?;
    let wanted = params.min_version()?;
    authorize(&state, &actor, id).await?;
    let _slot = match wanted {
        Some(_) => Some(state.waits.acquire(&actor.principal())?),
        None => None,
    };
    let mut changes = state.notifier.status.subscribe();
    let mut summaries = state.notifier.summary.subscribe();
    let deadline = tokio::time::Instant::now() + state.consistency_wait;
    loop {
        let view = current(&state, id).await?;
        let satisfied = match (&view, wanted) {
            (Some(v), Some(w)) => v.version >= w,
            (Some(_), None) => true,
            (None, None) => return Err(QueryError::NotFound),
            (None, Some(_)) => false,
        };
        if satisfied {
            return Ok(answer(&state, view.ok_or(QueryError::NotFound)?));
        }
        let want = wanted.unwrap_or(1);
        let woke = tokio::time::timeout_at(deadline, async {
            loop {
                tokio::select! {
                    c = changes.recv() => match c {
                        Ok(c) if c.order_id == id && c.version >= want => return,
                        Err(RecvError::Lagged(_)) => return,
                        Err(RecvError::Closed) => std::future::pending::<()>().await,
                        Ok(_) => {}
                    },
                    s = summaries.recv() => match s {
                        Ok((o, v)) if o == id && v >= want => return,
                        Err(RecvError::Lagged(_)) => return,
                        Err(RecvError::Closed) => std::future::pending::<()>().await,
                        Ok(_) => {}
                    },
                }
            }
        })
        .await;
        if woke.is_err() {
            let last = current(&state, id).await?;
            let have = last.as_ref().map(|v| v.version);
            if let Some(view) = last.filter(|v| v.version >= want) {
                return Ok(answer(&state, view));
            }
            return Err(not_visible(&state, id, want, have).await);
        }
    }
}

/// `GET /orders/{id}/status/stream`
#[utoipa::path(get, path = "/orders/{id}/status/stream", tag = "status",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "text/event-stream: `status` events (data = StatusView JSON, id = version), heartbeat comments; ends after a final state (delivered or cancelled)", content_type = "text/event-stream"),
        (status = 400, description = "`invalid-id`; `invalid-parameter` (it takes none)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not-found`: no such order", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 500, description = "`internal`: a read database failure (details only in the log)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub async fn stream_status(
    State(state): State<AppState>,
    actor: Actor,
    OrderPath(id): OrderPath,
    params: RawParams,
) -> QueryResult<Response> {
    params.only(&[])?;
    authorize(&state, &actor, id).await?;
    // Held for as long as the stream is open.
    let slot = state.streams.acquire(&actor.principal())?;
    // Subscribe first, then read: no change can fall between the two.
    let changes = state.notifier.status.subscribe();
    let first = current(&state, id).await?.ok_or(QueryError::NotFound)?;
    let stream = status_events(state.clone(), first, changes, slot);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(state.heartbeat).text("heartbeat"))
        .into_response())
}

fn is_final(status: &str) -> bool {
    matches!(status, "delivered" | "cancelled")
}

fn event(view: &StatusView) -> Event {
    Event::default()
        .event("status")
        .id(view.version.to_string())
        .json_data(view)
        .unwrap_or_else(|_| Event::default().comment("unserialisable"))
}

/// The stream: the current status first, then each newer change of this
/// order; it ends after a final state, and its task ends as soon as the
/// client goes away (the send fails).
fn status_events(
    state: AppState,
    first: StatusView,
    mut changes: tokio::sync::broadcast::Receiver<StatusChange>,
    slot: Slot,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(16);
    tokio::spawn(async move {
        // The subject's stream slot is free again when this task ends.
        let _slot = slot;
        let order = first.order_id;
        let mut version = first.version;
        if tx.send(event(&first)).await.is_err() || is_final(&first.status) {
            return;
        }
        // Pub/sub keeps nothing: after a lag, or every few seconds in case a
        // change was published while nobody listened, re-read the status.
        let mut resync = tokio::time::interval(std::time::Duration::from_secs(5));
        resync.tick().await;
        loop {
            let next = tokio::select! {
                () = tx.closed() => return,
                _ = resync.tick() => None,
                received = changes.recv() => match received {
                    Ok(change) if change.order_id == order => Some(StatusView {
                        order_id: order,
                        status: change.status,
                        version: change.version,
                        updated_at: change.updated_at,
                        source: "cache",
                    }),
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => None,
                    Err(RecvError::Closed) => return,
                },
            };
            let view = match next {
                Some(view) => Some(view),
                None => current(&state, order).await.ok().flatten(),
            };
            if let Some(view) = view.filter(|v| v.version > version) {
                version = view.version;
                if tx.send(event(&view)).await.is_err() || is_final(&view.status) {
                    return;
                }
            }
        }
    });
    futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
    )
}
