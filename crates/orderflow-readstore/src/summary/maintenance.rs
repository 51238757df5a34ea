//! `order_summary` as a [`ReadStore`]: what `orderctl` does to it outside
//! the event flow (backfill from the write model, and the reads, walks and
//! repairs of `reconcile`).
//!
//! Every write here is safe beside a live projector: a backfill only moves
//! a row forward, and a repair replaces a row only if it still holds the
//! version reconcile saw (a projector that moved it on since wins).

use std::collections::HashMap;

use anyhow::Context as _;
use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt as _};
use orderflow_readmodel::OrderSummary;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::SummaryProjection;
use super::projection::upsert;
use crate::store::{ReadStore, Stored, as_summary, differing_fields};

#[async_trait]
impl ReadStore for SummaryProjection {
    fn model(&self) -> &'static str {
        "summary"
    }

    async fn read(&self, orders: &[Uuid]) -> anyhow::Result<HashMap<Uuid, Stored>> {
        let rows: Vec<(Uuid, i64, Value)> = sqlx::query_as(
            "SELECT order_id, version, to_jsonb(s) FROM order_summary s WHERE order_id = ANY($1)",
        )
        .bind(orders)
        .fetch_all(&self.pool)
        .await
        .context("reading order_summary")?;
        Ok(rows
            .into_iter()
            .map(|(id, version, document)| (id, Stored { version, document }))
            .collect())
    }

    fn ids(&self, page: usize) -> BoxStream<'_, anyhow::Result<Vec<Uuid>>> {
        let limit = i64::try_from(page).unwrap_or(i64::MAX);
        stream::try_unfold(Some(Uuid::nil()), move |after| async move {
            let Some(after) = after else {
                return Ok(None);
            };
            let ids = ids_after(&self.pool, after, limit)
                .await
                .context("walking order_summary")?;
            let next = ids.last().copied();
            Ok(next.map(|last| (ids, Some(last))))
        })
        .boxed()
    }

    async fn backfill(&self, summaries: &[OrderSummary]) -> anyhow::Result<u64> {
        backfill(&self.pool, summaries)
            .await
            .context("writing order_summary")
    }

    /// The rows are locked in order-id order first, as the projector locks
    /// them, so the two cannot deadlock.
    async fn replace(&self, rows: &[(i64, &OrderSummary)]) -> anyhow::Result<u64> {
        let mut rows: Vec<(i64, &OrderSummary)> = rows.to_vec();
        rows.sort_by_key(|(_, s)| s.order_id);
        let ids: Vec<Uuid> = rows.iter().map(|(_, s)| s.order_id).collect();
        let seen: Vec<i64> = rows.iter().map(|(v, _)| *v).collect();
        let summaries: Vec<&OrderSummary> = rows.iter().map(|(_, s)| *s).collect();
        let mut tx = self.pool.begin().await?;
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

    async fn remove(&self, orders: &[Uuid]) -> anyhow::Result<u64> {
        let done = sqlx::query("DELETE FROM order_summary WHERE order_id = ANY($1)")
            .bind(orders)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// The row is the whole summary: every field is compared.
    fn differences(
        &self,
        stored: &Stored,
        want: &OrderSummary,
    ) -> anyhow::Result<Vec<&'static str>> {
        Ok(differing_fields(&as_summary(stored)?, want))
    }
}

/// Writes each summary unless the table already has that version or a newer
/// one, so it can run beside a live projector and be repeated. Returns how
/// many rows changed.
pub(crate) async fn backfill(pool: &PgPool, summaries: &[OrderSummary]) -> sqlx::Result<u64> {
    let mut rows: Vec<&OrderSummary> = summaries.iter().collect();
    rows.sort_by_key(|s| s.order_id);
    upsert(pool, &rows).await
}

/// Up to `limit` stored order ids after `after`, in id order.
async fn ids_after(pool: &PgPool, after: Uuid, limit: i64) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT order_id FROM order_summary WHERE order_id > $1 ORDER BY order_id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}
