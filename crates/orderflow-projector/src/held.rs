//! Held events: versions that arrived before an earlier version of their
//! order. They are kept durably (so the partition's offset can move on),
//! retried when their order advances and on a timer, and parked once the gap
//! has been open longer than the bound.

use std::collections::HashSet;
use std::time::Duration;

use orderflow_contracts::Envelope;
use sqlx::PgPool;
use uuid::Uuid;

use crate::Event;

/// One projector's view of the `held_events` table.
#[derive(Debug, Clone)]
pub struct Held {
    pub consumer: &'static str,
    pub pool: PgPool,
}

impl Held {
    /// Holds events whose earlier versions are missing.
    pub async fn hold(&self, events: &[&Event], reason: &str) -> sqlx::Result<()> {
        for e in events {
            sqlx::query(
                "INSERT INTO held_events (consumer, event_id, aggregate_id, aggregate_version, envelope, reason) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (consumer, event_id) DO NOTHING",
            )
            .bind(self.consumer)
            .bind(e.envelope.event_id)
            .bind(e.order_id())
            .bind(e.version())
            .bind(sqlx::types::Json(&e.envelope))
            .bind(reason)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Held events of `orders`, in per-order version order.
    pub async fn for_orders(&self, orders: &HashSet<Uuid>) -> sqlx::Result<Vec<Envelope>> {
        let orders: Vec<Uuid> = orders.iter().copied().collect();
        let rows: Vec<sqlx::types::Json<Envelope>> = sqlx::query_scalar(
            "SELECT envelope FROM held_events WHERE consumer = $1 AND aggregate_id = ANY($2) \
             ORDER BY aggregate_id, aggregate_version",
        )
        .bind(self.consumer)
        .bind(&orders)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|j| j.0).collect())
    }

    /// One page of every held event for the timer, in per-order version
    /// order, after `after` (an order id and version; `None` from the
    /// start). Keyset paging lets the timer reach every held order, however
    /// many are stuck ahead of it.
    pub async fn page(
        &self,
        after: Option<(Uuid, i64)>,
        limit: i64,
    ) -> sqlx::Result<Vec<Envelope>> {
        let (order, version) = after.unwrap_or((Uuid::nil(), i64::MIN));
        let rows: Vec<sqlx::types::Json<Envelope>> = sqlx::query_scalar(
            "SELECT envelope FROM held_events WHERE consumer = $1 \
               AND (aggregate_id, aggregate_version) > ($2, $3) \
             ORDER BY aggregate_id, aggregate_version LIMIT $4",
        )
        .bind(self.consumer)
        .bind(order)
        .bind(version)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|j| j.0).collect())
    }

    /// Removes events that are now applied (or turned out to be duplicates).
    pub async fn release(&self, event_ids: &[Uuid]) -> sqlx::Result<()> {
        if event_ids.is_empty() {
            return Ok(());
        }
        sqlx::query("DELETE FROM held_events WHERE consumer = $1 AND event_id = ANY($2)")
            .bind(self.consumer)
            .bind(event_ids)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Parks events held longer than `bound`; returns how many were newly parked.
    pub async fn park_overdue(&self, bound: Duration) -> sqlx::Result<u64> {
        let parked = sqlx::query(
            "UPDATE held_events SET parked = true, \
                 reason = reason || ' (parked after ' || $2 || ' s)' \
             WHERE consumer = $1 AND NOT parked AND held_at < now() - make_interval(secs => $3)",
        )
        .bind(self.consumer)
        .bind(bound.as_secs().to_string())
        .bind(bound.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(parked.rows_affected())
    }

    /// Counts of held and parked events.
    pub async fn counts(&self) -> sqlx::Result<(i64, i64)> {
        sqlx::query_as(
            "SELECT count(*) FILTER (WHERE NOT parked), count(*) FILTER (WHERE parked) \
             FROM held_events WHERE consumer = $1",
        )
        .bind(self.consumer)
        .fetch_one(&self.pool)
        .await
    }
}
