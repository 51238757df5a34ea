//! Idempotency keys: a retried POST returns the first response.
//!
//! The key row is claimed inside the command's own transaction. A concurrent
//! request with the same key blocks on that row until the first transaction
//! ends: on commit it finds the stored response and replays it; on rollback
//! (the command failed and changed nothing) it claims the key and runs. So
//! however many copies arrive at once, the command takes effect once.
//! Failed commands store nothing, so a retry of a refused request is
//! evaluated afresh. PlaceOrder claims its key in its one writing statement
//! instead, with the response (see `orders::place`), under the same rules.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sqlx::PgConnection;

use crate::error::{ApiError, ApiResult};

/// Outcome of claiming a key.
#[derive(Debug)]
pub enum Claim {
    /// First use (or the previous use expired): run the command.
    Fresh,
    /// Seen before with the same request: answer this.
    Replay(StoredResponse),
}

/// A successful response: sent once, stored for replays, sent the same way
/// again (plus `Idempotent-Replayed: true`).
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub status: u16,
    pub body: Vec<u8>,
    pub location: Option<String>,
    pub etag: Option<String>,
    /// Not stored: whether this is a replay.
    pub replayed: bool,
}

impl StoredResponse {
    /// A JSON response of `status` with `body`.
    pub fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Self {
        Self {
            status: status.as_u16(),
            body: serde_json::to_vec(body).unwrap_or_default(),
            location: None,
            etag: None,
            replayed: false,
        }
    }

    /// Sets `Location`.
    pub fn location(mut self, location: String) -> Self {
        self.location = Some(location);
        self
    }

    /// Sets `ETag`.
    pub fn etag(mut self, etag: String) -> Self {
        self.etag = Some(etag);
        self
    }
}

impl IntoResponse for StoredResponse {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let mut response = (status, self.body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.replayed {
            headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        for (name, value) in [(header::LOCATION, self.location), (header::ETAG, self.etag)] {
            if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
                headers.insert(name, value);
            }
        }
        response
    }
}

/// Claims `key` for this request within the caller's transaction.
pub async fn claim(
    tx: &mut PgConnection,
    principal: &str,
    key: &str,
    fingerprint: &[u8],
    ttl: Duration,
) -> ApiResult<Claim> {
    let claimed: Option<bool> = sqlx::query_scalar(include_str!("sql/idempotency_claim.sql"))
        .bind(principal)
        .bind(key)
        .bind(fingerprint)
        .bind(ttl.as_secs_f64())
        .fetch_optional(&mut *tx)
        .await?;
    if claimed.is_some() {
        return Ok(Claim::Fresh);
    }
    let recorded: Recorded = sqlx::query_as(
        "SELECT request_hash, status, response_body AS body, location, etag \
         FROM idempotency_keys WHERE principal = $1 AND key = $2",
    )
    .bind(principal)
    .bind(key)
    .fetch_one(&mut *tx)
    .await?;
    recorded.replay(fingerprint).map(Claim::Replay)
}

/// A key's committed record, as read back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Recorded {
    pub request_hash: Vec<u8>,
    pub status: Option<i16>,
    pub body: Option<Vec<u8>>,
    pub location: Option<String>,
    pub etag: Option<String>,
}

impl Recorded {
    /// What the record answers a request with `fingerprint`: its stored
    /// response, or a refusal when the key was used for another request.
    pub fn replay(self, fingerprint: &[u8]) -> ApiResult<StoredResponse> {
        if self.request_hash != fingerprint {
            return Err(ApiError::IdempotencyMismatch);
        }
        match (self.status, self.body) {
            (Some(status), Some(body)) => Ok(StoredResponse {
                status: status as u16,
                body,
                location: self.location,
                etag: self.etag,
                replayed: true,
            }),
            // A committed claim always has its response; anything else is a bug.
            _ => Err(ApiError::Database(sqlx::Error::RowNotFound)),
        }
    }
}

/// Stores the response of a claimed key, in the same transaction.
pub async fn complete(
    tx: &mut PgConnection,
    principal: &str,
    key: &str,
    response: &StoredResponse,
) -> ApiResult<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET status = $3, response_body = $4, location = $5, etag = $6 \
         WHERE principal = $1 AND key = $2",
    )
    .bind(principal)
    .bind(key)
    .bind(response.status as i16)
    .bind(&response.body)
    .bind(&response.location)
    .bind(&response.etag)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Deletes up to `batch` expired keys; returns how many went.
pub async fn prune_expired(pool: &sqlx::PgPool, batch: i64) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "DELETE FROM idempotency_keys WHERE ctid IN \
         (SELECT ctid FROM idempotency_keys WHERE expires_at < now() LIMIT $1)",
    )
    .bind(batch)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Runs `command` in one transaction under an optional idempotency key:
/// claims the key (or replays the stored response), runs the command, stores
/// its response with the key, commits. A failed command rolls everything
/// back, the key included.
pub async fn run<F>(
    pool: &sqlx::PgPool,
    ttl: Duration,
    principal: &str,
    key: Option<&str>,
    fingerprint: &[u8],
    command: F,
) -> ApiResult<StoredResponse>
where
    F: for<'c> AsyncFnOnce(&'c mut PgConnection) -> ApiResult<StoredResponse>,
{
    let mut tx = pool.begin().await?;
    if let Some(key) = key
        && let Claim::Replay(stored) = claim(&mut tx, principal, key, fingerprint, ttl).await?
    {
        tx.rollback().await?;
        return Ok(stored);
    }
    let response = command(&mut tx).await?;
    if let Some(key) = key {
        complete(&mut tx, principal, key, &response).await?;
    }
    tx.commit().await?;
    Ok(response)
}
