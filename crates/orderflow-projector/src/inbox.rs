//! The inbox: which events a projector has already processed.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::Event;

/// Which of a batch's events a consumer has processed (`$1` the consumer,
/// `$2` the event ids), as a statement whose plan does not depend on the
/// inbox's statistics (see the file).
pub const SEEN: &str = include_str!("sql/inbox_seen.sql");

/// One projector's view of the `inbox` table.
#[derive(Debug, Clone)]
pub struct Inbox {
    pub consumer: &'static str,
    pub pool: PgPool,
    /// Off only in benchmarks that measure what the inbox costs.
    pub enabled: bool,
    /// When set, the ids recorded since the last [`Inbox::take_recorded`]:
    /// what a batch checked while the one before it was still being applied
    /// could not have seen in the table. `None`: nothing is kept (a caller
    /// that never takes them).
    pub recorded: Option<Arc<Mutex<HashSet<Uuid>>>>,
}

impl Inbox {
    /// Event ids of `events` already processed.
    pub async fn seen<'e>(
        &self,
        events: impl IntoIterator<Item = &'e Event>,
    ) -> sqlx::Result<HashSet<Uuid>> {
        if !self.enabled {
            return Ok(HashSet::new());
        }
        let ids: Vec<Uuid> = events.into_iter().map(|e| e.envelope.event_id).collect();
        let seen: Vec<Uuid> = sqlx::query_scalar(SEEN)
            .bind(self.consumer)
            .bind(&ids)
            .fetch_all(&self.pool)
            .await?;
        Ok(seen.into_iter().collect())
    }

    /// Records events as processed (idempotent), on the given connection so
    /// a projection can make it part of its own transaction.
    pub async fn record<'e>(
        &self,
        conn: &mut PgConnection,
        events: impl IntoIterator<Item = &'e Event>,
    ) -> sqlx::Result<()> {
        let (mut ids, mut orders, mut versions) = (Vec::new(), Vec::new(), Vec::new());
        for e in events {
            ids.push(e.envelope.event_id);
            orders.push(e.order_id());
            versions.push(e.version());
        }
        if ids.is_empty() || !self.enabled {
            return Ok(());
        }
        sqlx::query(include_str!("sql/inbox_record.sql"))
            .bind(self.consumer)
            .bind(&ids)
            .bind(&orders)
            .bind(&versions)
            .execute(conn)
            .await?;
        if let Some(Ok(mut recorded)) = self.recorded.as_ref().map(|r| r.lock()) {
            recorded.extend(ids);
        }
        Ok(())
    }

    /// The ids recorded since the last call, and a fresh start. (An id
    /// recorded inside a transaction that then rolled back is in it too, so
    /// only a projector whose records commit on their own, one that does
    /// not check the inbox itself, should count these as seen.)
    pub fn take_recorded(&self) -> HashSet<Uuid> {
        self.recorded
            .as_ref()
            .and_then(|r| r.lock().ok().map(|mut ids| std::mem::take(&mut *ids)))
            .unwrap_or_default()
    }

    /// [`Inbox::record`] on a pooled connection, for stores outside Postgres.
    /// Takes no connection when the inbox is off or there is nothing to
    /// record, so a bench's "without the inbox" run pays nothing for it.
    pub async fn record_now<'e>(
        &self,
        events: impl IntoIterator<Item = &'e Event>,
    ) -> sqlx::Result<()> {
        let mut events = events.into_iter().peekable();
        if !self.enabled || events.peek().is_none() {
            return Ok(());
        }
        let mut conn = self.pool.acquire().await?;
        self.record(&mut conn, events).await
    }
}
