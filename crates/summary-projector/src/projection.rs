//! The summary projection: fold a batch into `order_summary` in one
//! transaction with its inbox rows.

use std::collections::{HashMap, HashSet};

use orderflow_projector::{ApplyError, Event, Inbox, Outcome, Projection};
use orderflow_readmodel::{OrderSummary, SUMMARY_CHANNEL, Step, apply};
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

impl Projection for SummaryProjection {
    fn name(&self) -> &'static str {
        crate::NAME
    }

    async fn apply(&self, events: &[Event], inbox: &Inbox) -> Result<Vec<Outcome>, ApplyError> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let orders: Vec<Uuid> = events
            .iter()
            .map(Event::order_id)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
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

        let mut outcomes = Vec::with_capacity(events.len());
        let mut changed = HashSet::new();
        for event in events {
            let step = apply(
                current.get(&event.order_id()),
                event.version(),
                &event.event,
                event.envelope.occurred_at,
            );
            outcomes.push(match step {
                Step::Applied(next) => {
                    changed.insert(next.order_id);
                    current.insert(next.order_id, *next);
                    Outcome::Applied
                }
                Step::Duplicate => Outcome::Duplicate,
                Step::Gap { .. } => Outcome::Gap,
                Step::Invalid(reason) => Outcome::Invalid(reason.to_owned()),
            });
        }

        let processed = events
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| matches!(o, Outcome::Applied | Outcome::Duplicate))
            .map(|(e, _)| e);
        inbox.record(&mut tx, processed).await.map_err(classify)?;
        if !changed.is_empty() {
            let rows: Vec<&OrderSummary> =
                changed.iter().filter_map(|id| current.get(id)).collect();
            sqlx::query(include_str!("sql/upsert.sql"))
                .bind(sqlx::types::Json(&rows))
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
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
