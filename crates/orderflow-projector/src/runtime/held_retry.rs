//! Retrying held events: those of orders that just advanced, and on the
//! timer every held row, a keyset page at a time, parking the overdue.

use std::collections::HashSet;

use orderflow_contracts::{Envelope, decode};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Runtime;
use super::dead_letters::envelope_message;
use crate::{Event, Outcome, Projection};

/// Held events the timer reads per query.
pub(super) const HELD_PAGE: i64 = 1000;

impl<P: Projection> Runtime<P> {
    /// Retries the held events of `orders` (their orders just advanced),
    /// until no more apply.
    pub(super) async fn retry_held(
        &self,
        orders: Option<&HashSet<Uuid>>,
        token: &CancellationToken,
    ) -> anyhow::Result<()> {
        let Some(orders) = orders else {
            return self.retry_all_held(token).await;
        };
        loop {
            // A database hiccup here backs off like any store error rather
            // than ending the projector; the held rows stay for next time.
            let envelopes = match self.held.for_orders(orders).await {
                Ok(envelopes) => envelopes,
                Err(err) => {
                    if self.transient(&format!("held events: {err}"), token).await {
                        continue;
                    }
                    return Ok(());
                }
            };
            match self.retry_envelopes(envelopes, token).await {
                Some(true) => {}
                Some(false) | None => return Ok(()),
            }
        }
    }

    /// The timer's pass: every held event, a page at a time, so an order
    /// whose gap was closed elsewhere (a backfill, a repair, a dead-letter
    /// replay) is released wherever it sorts.
    pub(super) async fn retry_all_held(&self, token: &CancellationToken) -> anyhow::Result<()> {
        let mut after = None;
        loop {
            let envelopes = match self.held.page(after, HELD_PAGE).await {
                Ok(envelopes) => envelopes,
                Err(err) => {
                    if self.transient(&format!("held events: {err}"), token).await {
                        continue;
                    }
                    return Ok(());
                }
            };
            let Some(last) = envelopes.last() else {
                return Ok(());
            };
            after = Some((last.aggregate_id, last.aggregate_version));
            let full = envelopes.len() as i64 == HELD_PAGE;
            if self.retry_envelopes(envelopes, token).await.is_none() || !full {
                return Ok(());
            }
        }
    }

    /// Applies held events once and releases what applied or turned out to
    /// be a duplicate. `Some(progressed)`; `None` when cancelled.
    pub(super) async fn retry_envelopes(
        &self,
        envelopes: Vec<Envelope>,
        token: &CancellationToken,
    ) -> Option<bool> {
        if envelopes.is_empty() {
            return Some(false);
        }
        let events: Vec<Event> = envelopes
            .into_iter()
            .filter_map(|envelope| {
                let event = decode(&envelope).ok()?;
                Some(Event {
                    envelope,
                    event,
                    partition: -1,
                    offset: -1,
                    traceparent: None,
                })
            })
            .collect();
        let outcomes = self.apply(&events, token).await?;
        let mut released = Vec::new();
        let mut progressed = false;
        for (event, outcome) in events.iter().zip(&outcomes) {
            match outcome {
                Outcome::Applied => {
                    progressed = true;
                    released.push(event.envelope.event_id);
                    metrics::counter!("projector_events_total", "projector" => self.projection.name(), "outcome" => "applied")
                        .increment(1);
                }
                Outcome::Duplicate => released.push(event.envelope.event_id),
                Outcome::Gap => {}
                // Held rows are durable: one that cannot be dead-lettered
                // now stays held and is tried again by the next sweep.
                Outcome::Invalid(reason) => {
                    let message = envelope_message(event);
                    match self
                        .dead_letter(&message, reason, self.settings.max_attempts)
                        .await
                    {
                        Ok(()) => released.push(event.envelope.event_id),
                        Err(err) => tracing::error!(
                            projector = self.projection.name(),
                            error = %err,
                            "projector.dlq a held event could not be dead-lettered; it stays held"
                        ),
                    }
                }
            }
        }
        // Unreleased rows are retried later and then found duplicates.
        while let Err(err) = self.held.release(&released).await {
            if !self
                .transient(&format!("releasing held events: {err}"), token)
                .await
            {
                return None;
            }
        }
        Some(progressed)
    }

    /// The timer: retry every held event, park the overdue, report counts.
    pub(super) async fn sweep_held(&self, token: &CancellationToken) -> anyhow::Result<()> {
        let name = self.projection.name();
        self.retry_held(None, token).await?;
        let parked = self.held.park_overdue(self.settings.gap_timeout).await?;
        if parked > 0 {
            metrics::counter!("projector_events_total", "projector" => name, "outcome" => "parked")
                .increment(parked);
            tracing::error!(
                projector = name,
                parked,
                "projector.held events parked: a gap stayed open past the bound"
            );
        }
        let (held, parked_total) = self.held.counts().await?;
        self.held_known.store(
            held + parked_total > 0,
            std::sync::atomic::Ordering::Relaxed,
        );
        metrics::gauge!("projector_held_events", "projector" => name, "state" => "held")
            .set(held as f64);
        metrics::gauge!("projector_held_events", "projector" => name, "state" => "parked")
            .set(parked_total as f64);
        Ok(())
    }
}
