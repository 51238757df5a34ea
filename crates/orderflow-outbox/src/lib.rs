//! The transactional outbox.
//!
//! A command writes its events into the `outbox` table in the same
//! transaction as the state change (guarantee 1); the relay later reads the
//! rows that are still unpublished, in id order, and marks them published
//! only after Kafka acknowledged every one of them (guarantee 2).
//!
//! Appending also issues `NOTIFY outbox`: Postgres delivers it only when the
//! transaction commits, so the relay wakes exactly when there is something
//! new to read, and never for a rolled-back command.

use orderflow_contracts::Envelope;
use sqlx::PgConnection;

/// Channel the relay listens on.
pub const NOTIFY_CHANNEL: &str = "outbox";

/// Errors of the outbox.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("outbox database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("encoding an envelope: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Appends `events` (in order) inside the caller's transaction.
///
/// The caller must hold the aggregate's row lock, so that one order's rows
/// get ids in version order and commit in that order.
pub async fn append(
    tx: &mut PgConnection,
    events: &[Envelope],
    traceparent: Option<&str>,
) -> Result<(), Error> {
    if events.is_empty() {
        return Ok(());
    }
    let mut event_ids = Vec::with_capacity(events.len());
    let mut types = Vec::with_capacity(events.len());
    let mut schema_versions = Vec::with_capacity(events.len());
    let mut aggregate_types = Vec::with_capacity(events.len());
    let mut aggregate_ids = Vec::with_capacity(events.len());
    let mut versions = Vec::with_capacity(events.len());
    let mut envelopes = Vec::with_capacity(events.len());
    for e in events {
        event_ids.push(e.event_id);
        types.push(e.event_type.clone());
        schema_versions.push(e.schema_version as i32);
        aggregate_types.push(e.aggregate_type.clone());
        aggregate_ids.push(e.aggregate_id);
        versions.push(e.aggregate_version);
        envelopes.push(serde_json::to_value(e)?);
    }
    sqlx::query(include_str!("sql/append.sql"))
        .bind(&event_ids)
        .bind(&types)
        .bind(&schema_versions)
        .bind(&aggregate_types)
        .bind(&aggregate_ids)
        .bind(&versions)
        .bind(&envelopes)
        .bind(traceparent)
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(NOTIFY_CHANNEL)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
