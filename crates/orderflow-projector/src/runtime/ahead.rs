//! Reading ahead: the next batch is read, decoded and checked against the
//! inbox while the one before it is applied, so the projector's own work
//! and the inbox round trip overlap the stores' instead of queueing behind
//! them (a status replay spent a third of each batch on them, with the
//! stores idle).
//!
//! Only reading is ahead; applying stays one batch at a time, in order.
//! Nothing read ahead is dead-lettered or committed before its turn: a
//! message that does not decode goes to the dead-letter topic when its
//! batch is applied, so dead letters keep the order they had, and a stall
//! found by the batch before still holds back its partition's later
//! messages (they are read again after the rewind), as do the messages of
//! a partition revoked meanwhile (its new owner reads them). What the check
//! ahead cannot see is what the batch before records while it runs; the
//! inbox keeps those ids and the batch adds them to what it has seen. A
//! batch read ahead when the loop is cancelled is dropped unapplied, and
//! the loop stops there, so nothing after it is committed.

use std::collections::HashSet;
use std::time::Instant;

use rdkafka::consumer::Consumer as _;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Runtime;
use super::messages::decode_message;
use crate::dlq::RawMessage;
use crate::{Event, Projection, timing};

/// A batch read and checked, waiting for its turn to be applied.
pub(super) struct Prepared {
    pub(super) batch: Vec<RawMessage>,
    /// One per message of `batch`: the event, or why it does not decode.
    pub(super) decoded: Vec<Result<Event, String>>,
    /// The event ids the inbox had when the batch was checked.
    pub(super) seen: HashSet<Uuid>,
}

impl<P: Projection> Runtime<P> {
    /// The next batch, prepared; `None` when there was none before the
    /// wait ran out, or when cancelled.
    pub(super) async fn read_ahead(&self, token: &CancellationToken) -> Option<Prepared> {
        let batch = tokio::select! {
            biased;
            () = token.cancelled() => return None,
            batch = self.next_batch() => batch,
        };
        if batch.is_empty() {
            // As the loop does when it waits itself.
            self.healthy();
            return None;
        }
        self.prepare(batch, token).await
    }

    /// `prepared` without the messages of partitions revoked while it was
    /// read ahead: their new owner reads them from the last commit, and
    /// applying or committing them here as well would race it. They are
    /// not committed, so nothing is lost by leaving them.
    pub(super) fn still_assigned(&self, prepared: Prepared) -> Prepared {
        let Ok(assignment) = self.consumer.assignment() else {
            return prepared;
        };
        let assigned: HashSet<i32> = assignment
            .elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        let Prepared {
            batch,
            decoded,
            seen,
        } = prepared;
        let (batch, decoded) = batch
            .into_iter()
            .zip(decoded)
            .filter(|(m, _)| assigned.contains(&m.partition))
            .unzip();
        Prepared {
            batch,
            decoded,
            seen,
        }
    }

    /// Decodes a batch and checks its events against the inbox (unless the
    /// projection checks it itself, inside its own transaction). `None`
    /// when cancelled while the inbox was unreachable.
    pub(super) async fn prepare(
        &self,
        batch: Vec<RawMessage>,
        token: &CancellationToken,
    ) -> Option<Prepared> {
        let name = self.projection.name();
        let started = Instant::now();
        let cap = self.settings.schema_version_cap.unwrap_or(u32::MAX);
        let decoded: Vec<Result<Event, String>> =
            batch.iter().map(|m| decode_message(m, cap)).collect();
        let started = timing::stage(name, "decode", started);
        let events: Vec<&Event> = decoded.iter().filter_map(|d| d.as_ref().ok()).collect();
        let seen = loop {
            if self.projection.checks_inbox() || events.is_empty() {
                break HashSet::new();
            }
            match self.inbox.seen(events.iter().copied()).await {
                Ok(seen) => break seen,
                Err(err) => {
                    if !self.transient(&format!("inbox: {err}"), token).await {
                        return None;
                    }
                }
            }
        };
        timing::stage(name, "inbox_check", started);
        Some(Prepared {
            batch,
            decoded,
            seen,
        })
    }
}
