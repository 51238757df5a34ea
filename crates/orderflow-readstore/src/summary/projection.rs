//! The summary projection: fold a batch into `order_summary` in one
//! transaction with its inbox rows.

use std::collections::HashMap;

use orderflow_projector::{ApplyError, Event, Inbox, Outcome, Projection, fold};
use orderflow_readmodel::{OrderSummary, SUMMARY_CHANNEL};
use sqlx::PgPool;
use uuid::Uuid;

/// Writes the `order_summary` table of the read database.
#[derive(Debug, Clone)]
pub struct SummaryProjection {
    pub pool: PgPool,
}

/// Connection and server faults are worth retrying; a row the database
/// refuses (data or constraint error) is not.
pub fn classify(err: sqlx::Error) -> ApplyError {
    let refused = err
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code.starts_with("22") || code.starts_with("23"));
    if refused {
        ApplyError::Refused(err.to_string())
    } else {
        ApplyError::Transient(err.to_string())
    }
}

/// Writes `rows` (sorted by order id), each only over an older version of
/// its row, and returns how many rows changed.
pub(crate) async fn upsert(
    db: impl sqlx::PgExecutor<'_>,
    rows: &[&OrderSummary],
) -> sqlx::Result<u64> {
    let done = sqlx::query(include_str!("sql/upsert.sql"))
        .bind(sqlx::types::Json(rows))
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

impl Projection for SummaryProjection {
    fn name(&self) -> &'static str {
        super::NAME
    }

    async fn apply(&self, events: &[Event], inbox: &Inbox) -> Result<Vec<Outcome>, ApplyError> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let orders = fold::orders(events);
        // Locked, so a second instance applying the same events (during a
        // rebalance) waits and then sees them as duplicates.
        let stored: Vec<sqlx::types::Json<OrderSummary>> = sqlx::query_scalar(
            "SELECT to_jsonb(s) FROM order_summary s WHERE order_id = ANY($1) ORDER BY order_id FOR UPDATE",
        )
        .bind(&orders)
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
        let mut current: HashMap<Uuid, OrderSummary> =
            stored.into_iter().map(|s| (s.0.order_id, s.0)).collect();

        let (outcomes, changed) = fold::fold_summaries(&mut current, events);
        let processed = fold::processed(events, &outcomes);
        inbox.record(&mut tx, processed).await.map_err(classify)?;
        if !changed.is_empty() {
            // In id order, so two replicas in a rebalance lock rows alike.
            let mut rows: Vec<&OrderSummary> =
                changed.iter().filter_map(|id| current.get(id)).collect();
            rows.sort_by_key(|s| s.order_id);
            upsert(&mut *tx, &rows).await.map_err(classify)?;
            // Delivered on commit; chunked to stay far below NOTIFY's 8 KB.
            let pairs: Vec<String> = rows
                .iter()
                .map(|s| format!("{}:{}", s.order_id, s.version))
                .collect();
            for chunk in pairs.chunks(100) {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(SUMMARY_CHANNEL)
                    .bind(chunk.join(","))
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
            }
        }
        tx.commit().await.map_err(classify)?;
        Ok(outcomes)
    }
}
