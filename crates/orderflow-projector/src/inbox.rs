//! The inbox: which events a projector has already processed.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{Event, Outcome, fold, timing};

/// Which of a batch's events a consumer has processed (`$1` the consumer,
/// `$2` the event ids), as a statement whose plan does not depend on the
/// inbox's statistics (see the file).
pub const SEEN: &str = include_str!("sql/inbox_seen.sql");

/// Records a batch's events (`$1` the consumer, `$2` the event ids, `$3`
/// their orders, `$4` their versions), idempotently.
const RECORD: &str = include_str!("sql/inbox_record.sql");

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
        if !self.enabled {
            return Ok(());
        }
        let events: Vec<&Event> = events.into_iter().collect();
        self.insert(conn, events.iter().copied()).await?;
        self.remember(events);
        Ok(())
    }

    /// The inbox rows of `events`, on `conn` (nothing for no events).
    async fn insert<'e>(
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
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query(RECORD)
            .bind(self.consumer)
            .bind(&ids)
            .bind(&orders)
            .bind(&versions)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Keeps `events`' ids as recorded, for [`Inbox::take_recorded`].
    fn remember<'e>(&self, events: impl IntoIterator<Item = &'e Event>) {
        if let Some(Ok(mut recorded)) = self.recorded.as_ref().map(|r| r.lock()) {
            recorded.extend(events.into_iter().map(|e| e.envelope.event_id));
        }
    }

    /// Runs `write`, the store's write of `events`, and records those of
    /// them its outcomes call processed, with the inbox's insert running
    /// beside the write instead of after it: a transaction inserts every
    /// event's id while the store works and commits only once `write` has
    /// succeeded. So the order a crash depends on holds (nothing is marked
    /// processed that the store did not take: a failed write, or a crash
    /// before the commit, rolls the rows back and the redelivery applies
    /// them, the store's version guard keeping that idempotent), while the
    /// insert's time on the server, most of its cost, overlaps the store's.
    /// When the outcomes leave some events unprocessed (a gap held, an
    /// invalid event), the transaction is rolled back and the processed ones
    /// are recorded by themselves: rare, and it needs no right to delete
    /// from the inbox. An insert that fails after a successful write fails
    /// the batch, whose retry finds the store's writes duplicates and
    /// records them then. What is left of the insert after the write, its
    /// rest and the commit, is the batch's `inbox_record` stage.
    pub async fn record_while<W, E>(
        &self,
        events: &[Event],
        write: W,
        to_error: impl Fn(sqlx::Error) -> E,
    ) -> Result<Vec<Outcome>, E>
    where
        W: Future<Output = Result<Vec<Outcome>, E>>,
    {
        let write = async { (write.await, Instant::now()) };
        if !self.enabled || events.is_empty() {
            let (outcomes, wrote) = write.await;
            timing::stage(self.consumer, "inbox_record", wrote);
            return outcomes;
        }
        let insert = async {
            let mut tx = self.pool.begin().await?;
            self.insert(&mut tx, events).await?;
            Ok::<_, sqlx::Error>(tx)
        };
        // A failed write drops the transaction, which rolls it back.
        let ((outcomes, wrote), tx) = tokio::join!(write, insert);
        let outcomes = outcomes?;
        let tx = tx.map_err(&to_error)?;
        if fold::processed(events, &outcomes).count() == events.len() {
            tx.commit().await.map_err(&to_error)?;
            self.remember(events);
        } else {
            tx.rollback().await.map_err(&to_error)?;
            self.record_now(fold::processed(events, &outcomes))
                .await
                .map_err(&to_error)?;
        }
        timing::stage(self.consumer, "inbox_record", wrote);
        Ok(outcomes)
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
