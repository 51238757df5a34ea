//! The summary projection: fold a batch into `order_summary` in one
//! transaction with its inbox rows, in four round trips whatever the batch
//! size: `BEGIN`; one statement that locks the batch's rows and reads which
//! of its events the inbox has seen; one that writes the changed rows, the
//! inbox rows and the change notifications; `COMMIT`.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;
use std::time::Instant;

use orderflow_projector::{ApplyError, Event, Inbox, Outcome, Projection, fold, timing};
use orderflow_readmodel::{OrderSummary, SUMMARY_CHANNEL};
use sqlx::{FromRow as _, PgPool, Row as _};
use uuid::Uuid;

use super::SummaryRow;

/// The batch's read: its orders' rows, locked, and which of its events the
/// inbox has seen (`$1` the orders, `$2` the consumer or NULL, `$3` the event
/// ids), in one round trip.
pub const APPLY_READ: &str = include_str!("sql/apply_read.sql");

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

/// The batch's write: `apply_write.sql` around [`upsert`]'s statement, so
/// the version guard is written once.
static WRITE: LazyLock<String> = LazyLock::new(|| {
    include_str!("sql/apply_write.sql").replace("-- upsert.sql", include_str!("sql/upsert.sql"))
});

impl Projection for SummaryProjection {
    fn name(&self) -> &'static str {
        super::NAME
    }

    /// The inbox is read inside the batch's transaction, with the rows.
    fn checks_inbox(&self) -> bool {
        true
    }

    async fn apply(&self, events: &[Event], inbox: &Inbox) -> Result<Vec<Outcome>, ApplyError> {
        let name = self.name();
        let started = Instant::now();
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let orders = fold::orders(events);
        let ids: Vec<Uuid> = events.iter().map(|e| e.envelope.event_id).collect();
        // Locked, so a second instance applying the same events (during a
        // rebalance) waits and then sees them as duplicates.
        let read = sqlx::query(APPLY_READ)
            .bind(&orders)
            .bind(inbox.enabled.then_some(inbox.consumer))
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?;
        let mut current: HashMap<Uuid, OrderSummary> = HashMap::with_capacity(orders.len());
        let mut seen: HashSet<Uuid> = HashSet::new();
        for row in &read {
            // An inbox row has no order; a summary row no event id.
            if let Some(id) = row.try_get::<Option<Uuid>, _>("seen").map_err(classify)? {
                seen.insert(id);
            } else {
                let summary = OrderSummary::from(SummaryRow::from_row(row).map_err(classify)?);
                current.insert(summary.order_id, summary);
            }
        }
        let started = timing::stage(name, "store_read", started);

        // Seen by the inbox: processed before, nothing to apply or record.
        let fresh: Vec<Event> = events
            .iter()
            .filter(|e| !seen.contains(&e.envelope.event_id))
            .cloned()
            .collect();
        let (fresh_outcomes, changed) = fold::fold_summaries(&mut current, &fresh);
        // The inbox rows: empty arrays record nothing.
        let (mut ids, mut inbox_orders, mut versions) = (Vec::new(), Vec::new(), Vec::new());
        if inbox.enabled {
            for e in fold::processed(&fresh, &fresh_outcomes) {
                ids.push(e.envelope.event_id);
                inbox_orders.push(e.order_id());
                versions.push(e.version());
            }
        }
        if !changed.is_empty() || !ids.is_empty() {
            // In id order, so two replicas in a rebalance lock rows alike.
            let mut rows: Vec<&OrderSummary> =
                changed.iter().filter_map(|id| current.get(id)).collect();
            rows.sort_by_key(|s| s.order_id);
            sqlx::query(&WRITE)
                .bind(sqlx::types::Json(&rows))
                .bind(inbox.consumer)
                .bind(&ids)
                .bind(&inbox_orders)
                .bind(&versions)
                .bind(SUMMARY_CHANNEL)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        let started = timing::stage(name, "store_write", started);
        tx.commit().await.map_err(classify)?;
        timing::stage(name, "tx_commit", started);

        let mut fresh_outcomes = fresh_outcomes.into_iter();
        Ok(events
            .iter()
            .map(|e| {
                if seen.contains(&e.envelope.event_id) {
                    Outcome::Duplicate
                } else {
                    fresh_outcomes.next().unwrap_or(Outcome::Duplicate)
                }
            })
            .collect())
    }
}
