//! Several batches in flight at once: the window between the outbox and
//! Kafka.
//!
//! One batch at a time leaves both sides idle half the time: Postgres waits
//! while Kafka acknowledges, Kafka waits while Postgres is read and marked.
//! The window keeps up to `depth` batches enqueued in the producer and
//! completes them strictly in the order they were read: the oldest batch's
//! delivery reports are awaited and its rows marked published (one
//! statement moving them from `outbox` to `outbox_published`, on a second
//! connection, while the lock connection reads and enqueues the next batch)
//! while the later batches are already on their way.
//!
//! The marking connection commits asynchronously (`synchronous_commit =
//! off`): the relay never waits for the mark's WAL flush. A mark lost in a
//! database crash leaves its rows in the outbox, so they are sent again
//! (at least once, consumers deduplicate); nothing is lost, because a row
//! leaves the outbox only after Kafka acknowledged it.
//!
//! Ordering holds because every batch is read with the rows already in
//! flight excluded, oldest unpublished id first, and enqueued in id order
//! into one producer: an order's next version, once visible, comes after
//! every earlier version that is visible too (the command holds the order's
//! row lock until it commits, so its earlier version committed first, and is
//! either in flight already or in this read, ahead of it). A late committer
//! below the rows in flight (the visibility gap) is found by the same read,
//! because it reads unpublished rows, never "after the last id".
//!
//! A row that fails for good is parked; its order's later rows that are
//! already in flight are not marked, so they go out again after it once it
//! is re-driven. Any other failure ends the window: what its oldest batch got
//! acknowledged is marked, and everything else is read and sent again
//! (consumers deduplicate).

use std::collections::{HashMap, HashSet, VecDeque};

use orderflow_outbox::{Acked, Shard};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use sqlx::PgConnection;
use sqlx::types::Uuid;
use time::OffsetDateTime;

use crate::publisher::{self, Enqueued, Limits, Outcome, Report, Waits};

/// Where a window reads from and sends to.
#[derive(Clone, Copy)]
#[allow(missing_debug_implementations)] // the producer has no Debug
pub struct Route<'a> {
    pub producer: &'a FutureProducer,
    pub topic: &'a str,
    pub limits: &'a Limits,
    pub shard: Shard,
}

/// The batches in flight, oldest first.
#[derive(Debug)]
pub struct Pipeline {
    depth: usize,
    batch: i64,
    inflight: VecDeque<Enqueued>,
    /// Orders with a row parked or failed since the window was last empty:
    /// their later rows already in flight are not marked published.
    blocked: HashSet<Uuid>,
}

/// What filling the window did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filled {
    /// Rows read and enqueued.
    pub sent: usize,
    /// Rows parked before they were sent (over the size limit, refused).
    pub parked: usize,
    /// The last read found fewer rows than a batch: nothing more to read now.
    pub caught_up: bool,
}

impl Pipeline {
    /// A window of `depth` batches of up to `batch` rows.
    pub fn new(depth: usize, batch: i64) -> Self {
        Self {
            depth: depth.max(1),
            batch,
            inflight: VecDeque::with_capacity(depth),
            blocked: HashSet::new(),
        }
    }

    /// No batch in flight.
    pub fn is_empty(&self) -> bool {
        self.inflight.is_empty()
    }

    /// Reads and enqueues batches until the window is full or the outbox has
    /// nothing more to read now. `marking` are rows acknowledged but not yet
    /// marked: still in flight as far as reading goes.
    pub async fn fill(
        &mut self,
        conn: &mut PgConnection,
        route: &Route<'_>,
        marking: &[i64],
    ) -> Result<Filled, orderflow_outbox::Error> {
        let mut filled = Filled::default();
        while self.inflight.len() < self.depth {
            let inflight: Vec<i64> = self
                .inflight
                .iter()
                .flat_map(|b| b.ids().iter().copied())
                .chain(marking.iter().copied())
                .collect();
            let rows =
                orderflow_outbox::fetch_unpublished(conn, route.shard, self.batch, &inflight)
                    .await?;
            let full = rows.len() as i64 >= self.batch;
            if rows.is_empty() {
                filled.caught_up = true;
                break;
            }
            let enqueued =
                publisher::enqueue(route.producer, route.topic, route.limits, &rows).await;
            // Parked before the next read, so that read leaves the order's
            // later rows out.
            for (id, reason) in enqueued.parked() {
                park(conn, *id, reason).await?;
            }
            filled.sent += enqueued.ids().len();
            filled.parked += enqueued.parked().len();
            let failed = enqueued.failed();
            self.inflight.push_back(enqueued);
            if failed || !full {
                // After an enqueue failure nothing more goes out until the
                // window is completed and retried.
                filled.caught_up = !full;
                break;
            }
        }
        Ok(filled)
    }

    /// Waits for the oldest batch's delivery reports and parks what Kafka
    /// refused for good; [`mark`] then marks what it acknowledged. `None`
    /// when Kafka acknowledged nothing for the give-up bound.
    pub async fn complete_oldest(
        &mut self,
        conn: &mut PgConnection,
        waits: Waits,
    ) -> Result<Option<Completed>, orderflow_outbox::Error> {
        let Some(oldest) = self.inflight.pop_front() else {
            return Ok(Some(Completed::default()));
        };
        let Report::Done(report) = oldest.reports(conn, waits).await? else {
            return Ok(None);
        };
        let mut done = Completed {
            acked: Vec::with_capacity(report.results.len()),
            acked_at: Some(OffsetDateTime::now_utc()),
            ..Completed::default()
        };
        for row in report.results {
            if self.blocked.contains(&row.order) {
                continue;
            }
            match row.result {
                Ok(acked) => done.acked.push(acked),
                Err(publisher::Failure::Permanent(reason)) => {
                    park(conn, row.id, &reason).await?;
                    done.parked += 1;
                    self.blocked.insert(row.order);
                }
                Err(publisher::Failure::Transient(err)) => {
                    self.blocked.insert(row.order);
                    done.error.get_or_insert(err);
                }
            }
        }
        done.created = report.created;
        if let Some(err) = report.enqueue_error {
            done.error.get_or_insert(err);
        }
        if done.error.is_some() {
            // Later batches are not marked: read and sent again after the
            // back-off, in order, behind what failed.
            self.inflight.clear();
        }
        if self.inflight.is_empty() {
            self.blocked.clear();
        }
        Ok(Some(done))
    }
}

/// A batch whose reports are in: what to mark, and how it went.
#[derive(Debug, Default)]
pub struct Completed {
    acked: Vec<Acked>,
    /// When the reports were in: the rows' `published_at`.
    acked_at: Option<OffsetDateTime>,
    created: HashMap<i64, OffsetDateTime>,
    parked: usize,
    error: Option<KafkaError>,
}

impl Completed {
    /// Rows acknowledged, to be marked.
    pub fn acked_ids(&self) -> Vec<i64> {
        self.acked.iter().map(|a| a.id).collect()
    }

    /// Kafka refused something that may go through on a retry.
    pub fn failed(&self) -> bool {
        self.error.is_some()
    }

    /// The batch's outcome, once marked.
    pub fn outcome(self) -> Outcome {
        match self.error {
            Some(err) => Outcome::Retry(err),
            None => Outcome::Published {
                published: self.acked.len(),
                parked: self.parked,
            },
        }
    }
}

/// Marks a completed batch's acknowledged rows published, in one statement.
///
/// It may run on a connection other than the shard's lock connection, at
/// the same time as the next read: marking rows Kafka acknowledged is right
/// whoever holds the lock, and those rows stay out of every read until the
/// mark is committed.
pub async fn mark(
    conn: &mut PgConnection,
    done: &Completed,
) -> Result<(), orderflow_outbox::Error> {
    if done.acked.is_empty() {
        return Ok(());
    }
    let acked_at = done.acked_at.unwrap_or_else(OffsetDateTime::now_utc);
    orderflow_outbox::mark_published(conn, &done.acked, acked_at).await?;
    for a in &done.acked {
        if let Some(created) = done.created.get(&a.id) {
            let latency = (acked_at - *created).as_seconds_f64().max(0.0);
            metrics::histogram!("relay_commit_to_ack_seconds").record(latency);
        }
    }
    metrics::counter!("relay_published_total").increment(done.acked.len() as u64);
    Ok(())
}

async fn park(
    conn: &mut PgConnection,
    id: i64,
    reason: &str,
) -> Result<(), orderflow_outbox::Error> {
    orderflow_outbox::park(conn, id, reason).await?;
    metrics::counter!("relay_parked_total").increment(1);
    tracing::error!(
        row = id,
        reason,
        "relay.park a row Kafka cannot take; its order waits"
    );
    Ok(())
}
