//! What `orderctl` does to `order_summary` outside the event flow: backfill
//! from the write model, and the reads and repairs of `reconcile`.
//!
//! Every write here is safe beside a live projector: a backfill only moves
//! a row forward, and a repair replaces a row only if it still holds the
//! version reconcile saw (a projector that moved it on since wins).

use std::collections::HashMap;

use orderflow_readmodel::OrderSummary;
use sqlx::PgPool;
use uuid::Uuid;

use super::projection::upsert;

/// Writes each summary unless the table already has that version or a newer
/// one, so it can run beside a live projector and be repeated. Returns how
/// many rows changed.
pub async fn backfill(pool: &PgPool, summaries: &[OrderSummary]) -> sqlx::Result<u64> {
    let mut rows: Vec<&OrderSummary> = summaries.iter().collect();
    rows.sort_by_key(|s| s.order_id);
    upsert(pool, &rows).await
}

/// The stored summaries of `orders` (absent ones are missing from the map).
pub async fn load(pool: &PgPool, orders: &[Uuid]) -> sqlx::Result<HashMap<Uuid, OrderSummary>> {
    let rows: Vec<sqlx::types::Json<OrderSummary>> =
        sqlx::query_scalar("SELECT to_jsonb(s) FROM order_summary s WHERE order_id = ANY($1)")
            .bind(orders)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(|r| (r.0.order_id, r.0)).collect())
}

/// Up to `limit` stored order ids after `after`, in id order.
pub async fn ids_after(pool: &PgPool, after: Uuid, limit: i64) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT order_id FROM order_summary WHERE order_id > $1 ORDER BY order_id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Replaces each `(seen version, summary)` row that still has the version
/// seen, whatever the summary's own version (a repair may move a row back to
/// what the write model says). The rows are locked in order-id order first,
/// as the projector locks them, so the two cannot deadlock. Returns how many
/// rows were replaced.
pub async fn replace(pool: &PgPool, rows: &[(i64, &OrderSummary)]) -> sqlx::Result<u64> {
    let mut rows: Vec<(i64, &OrderSummary)> = rows.to_vec();
    rows.sort_by_key(|(_, s)| s.order_id);
    let ids: Vec<Uuid> = rows.iter().map(|(_, s)| s.order_id).collect();
    let seen: Vec<i64> = rows.iter().map(|(v, _)| *v).collect();
    let summaries: Vec<&OrderSummary> = rows.iter().map(|(_, s)| *s).collect();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "SELECT 1 FROM order_summary WHERE order_id = ANY($1) ORDER BY order_id FOR UPDATE",
    )
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    let done = sqlx::query(include_str!("sql/replace.sql"))
        .bind(&ids)
        .bind(&seen)
        .bind(sqlx::types::Json(&summaries))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// Removes the rows of `orders`. Returns how many were there.
pub async fn remove(pool: &PgPool, orders: &[Uuid]) -> sqlx::Result<u64> {
    let done = sqlx::query("DELETE FROM order_summary WHERE order_id = ANY($1)")
        .bind(orders)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
