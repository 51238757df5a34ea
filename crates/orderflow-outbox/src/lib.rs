//! The transactional outbox.
//!
//! A command writes its events into the `outbox` table in the same
//! transaction as the state change (guarantee 1); the relay later reads the
//! rows that are still unpublished, in id order, and marks them published
//! only after Kafka acknowledged every one of them (guarantee 2).
//!
//! Marking deletes: `outbox` holds only rows still to publish (or parked),
//! and [`mark_published`] moves each acknowledged row out of it into the
//! narrow `outbox_published` (ids, type, version, times, trace context and
//! the Kafka partition and offset; no envelope), in one statement. The
//! UPDATE it replaces rewrote the whole ~1.2 KB row and every index entry
//! (never a HOT update: the unpublished-rows index changed) and capped the
//! relay near 10k rows/s; the delete only stamps the old tuple. Retention
//! ([`prune`]) trims `outbox_published`.
//!
//! Appending does not `NOTIFY`: Postgres takes one cluster-wide lock for a
//! notifying transaction's commit and holds it through the commit record,
//! so notifying commands commit one at a time (measured in
//! `bench/REPORT.md`: the service's statements ran markedly faster at
//! concurrency 8 and 32 without it). The relay polls every few milliseconds
//! instead; [`redrive`], an operator's act, still notifies it on
//! [`NOTIFY_CHANNEL`].

use orderflow_contracts::Envelope;
use sqlx::PgConnection;

/// Channel the relay listens on (operators' re-drives wake it there).
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
        envelopes.push(serde_json::to_string(e)?);
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
    Ok(())
}

/// An outbox row on its way to Kafka.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub aggregate_id: uuid::Uuid,
    pub aggregate_version: i64,
    /// The envelope JSON, as the message value.
    pub envelope: String,
    pub traceparent: Option<String>,
    pub created_at: time::OffsetDateTime,
}

/// Which rows a relay owns: all rows whose aggregate hashes to `index` of
/// `count`. An order always falls in one shard, so one relay publishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: i64,
    pub count: i64,
}

/// Up to `limit` unpublished rows of `shard`, oldest id first, leaving out
/// `in_flight` (rows sent but not yet acknowledged).
pub async fn fetch_unpublished(
    conn: &mut PgConnection,
    shard: Shard,
    limit: i64,
    in_flight: &[i64],
) -> Result<Vec<OutboxRow>, Error> {
    Ok(sqlx::query_as(include_str!("sql/fetch_unpublished.sql"))
        .bind(shard.index)
        .bind(shard.count)
        .bind(limit)
        .bind(in_flight)
        .fetch_all(conn)
        .await?)
}

/// Where Kafka acknowledged one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    pub id: i64,
    pub partition: i32,
    pub offset: i64,
}

/// Marks rows published (after Kafka acknowledged them, at `acked_at`),
/// with where: moves them from `outbox` to `outbox_published`. Returns how
/// many were still in the outbox (a row an earlier leader marked is not
/// recorded twice).
pub async fn mark_published(
    conn: &mut PgConnection,
    acked: &[Acked],
    acked_at: time::OffsetDateTime,
) -> Result<u64, Error> {
    let ids: Vec<i64> = acked.iter().map(|a| a.id).collect();
    let partitions: Vec<i32> = acked.iter().map(|a| a.partition).collect();
    let offsets: Vec<i64> = acked.iter().map(|a| a.offset).collect();
    let done = sqlx::query(include_str!("sql/mark_published.sql"))
        .bind(&ids)
        .bind(&partitions)
        .bind(&offsets)
        .bind(acked_at)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Parks a row Kafka can never take, with why; its order's later rows wait
/// behind it until it is re-driven.
pub async fn park(conn: &mut PgConnection, id: i64, reason: &str) -> Result<u64, Error> {
    let done = sqlx::query("UPDATE outbox SET parked_at = now(), park_reason = $2 WHERE id = $1")
        .bind(id)
        .bind(reason)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// A parked row, for operators.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ParkedRow {
    pub id: i64,
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub aggregate_id: uuid::Uuid,
    pub aggregate_version: i64,
    /// Size of the envelope, in bytes.
    pub bytes: i32,
    pub park_reason: Option<String>,
    pub parked_at: time::OffsetDateTime,
    /// Rows of the same order waiting behind it.
    pub waiting: i64,
}

/// Every parked row still to publish, oldest first.
pub async fn parked(conn: &mut PgConnection) -> Result<Vec<ParkedRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT p.id, p.event_id, p.event_type, p.aggregate_id, p.aggregate_version, \
                octet_length(p.envelope::text) AS bytes, p.park_reason, p.parked_at, \
                (SELECT count(*) FROM outbox w WHERE w.aggregate_id = p.aggregate_id \
                   AND w.id > p.id) AS waiting \
         FROM outbox p WHERE p.parked_at IS NOT NULL ORDER BY p.id",
    )
    .fetch_all(conn)
    .await?)
}

/// Un-parks rows (`None`: every parked row) so the relay tries them again;
/// returns how many. Wakes the relay.
pub async fn redrive(conn: &mut PgConnection, ids: Option<&[i64]>) -> Result<u64, Error> {
    let done =
        match ids {
            Some(ids) => sqlx::query(
                "UPDATE outbox SET parked_at = NULL WHERE parked_at IS NOT NULL AND id = ANY($1)",
            )
            .bind(ids)
            .execute(&mut *conn)
            .await?,
            None => {
                sqlx::query("UPDATE outbox SET parked_at = NULL WHERE parked_at IS NOT NULL")
                    .execute(&mut *conn)
                    .await?
            }
        };
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(NOTIFY_CHANNEL)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}

/// Parked rows still to publish.
pub async fn parked_count(conn: &mut PgConnection) -> Result<i64, Error> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE parked_at IS NOT NULL")
            .fetch_one(conn)
            .await?,
    )
}

/// Deletes up to `batch` records of events published more than
/// `retention` ago (from `outbox_published`).
pub async fn prune(
    conn: &mut PgConnection,
    retention: std::time::Duration,
    batch: i64,
) -> Result<u64, Error> {
    let done = sqlx::query(include_str!("sql/prune.sql"))
        .bind(retention.as_secs_f64())
        .bind(batch)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Unpublished rows and the age of the oldest, in seconds.
pub async fn backlog(conn: &mut PgConnection) -> Result<(i64, f64), Error> {
    let (count, age): (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), extract(epoch FROM now() - min(created_at))::float8 FROM outbox",
    )
    .fetch_one(conn)
    .await?;
    Ok((count, age.unwrap_or(0.0)))
}
