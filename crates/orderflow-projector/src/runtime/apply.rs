//! Applying a batch: transient store errors retried with backoff, a batch
//! the store refuses split so the refused event can be dead-lettered alone,
//! and the outcomes settled (counted, gaps held, poison dead-lettered).

use std::collections::{BTreeMap, HashSet};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Runtime;
use super::dead_letters::envelope_message;
use crate::{ApplyError, Event, Outcome, Projection};

impl<P: Projection> Runtime<P> {
    /// Applies events, retrying transient failures with backoff and
    /// isolating refused events. `None` when cancelled.
    pub(super) async fn apply(
        &self,
        events: &[Event],
        token: &CancellationToken,
    ) -> Option<Vec<Outcome>> {
        if events.is_empty() {
            return Some(Vec::new());
        }
        loop {
            match self.projection.apply(events, &self.inbox).await {
                Ok(outcomes) => {
                    self.healthy();
                    return Some(outcomes);
                }
                Err(ApplyError::Transient(err)) => {
                    if !self.transient(&err, token).await {
                        return None;
                    }
                }
                Err(ApplyError::Refused(err)) => {
                    tracing::warn!(projector = self.projection.name(), error = %err, "projector.apply batch refused; isolating");
                    return self.apply_one_by_one(events, token).await;
                }
            }
        }
    }

    /// Applies events one at a time, so one that the store keeps refusing
    /// can be dead-lettered without holding up the rest.
    pub(super) async fn apply_one_by_one(
        &self,
        events: &[Event],
        token: &CancellationToken,
    ) -> Option<Vec<Outcome>> {
        let mut outcomes = Vec::with_capacity(events.len());
        for event in events {
            let mut attempts = 0;
            let outcome = loop {
                attempts += 1;
                match self
                    .projection
                    .apply(std::slice::from_ref(event), &self.inbox)
                    .await
                {
                    Ok(mut one) => break one.pop().unwrap_or(Outcome::Duplicate),
                    Err(ApplyError::Transient(err)) => {
                        attempts -= 1;
                        if !self.transient(&err, token).await {
                            return None;
                        }
                    }
                    Err(ApplyError::Refused(err)) if attempts >= self.settings.max_attempts => {
                        break Outcome::Invalid(format!("refused {attempts} times: {err}"));
                    }
                    Err(ApplyError::Refused(_)) => {
                        tokio::time::sleep(orderflow_service::retry::delay(
                            attempts,
                            self.settings.max_backoff,
                        ))
                        .await;
                    }
                }
            };
            outcomes.push(outcome);
        }
        self.healthy();
        Some(outcomes)
    }

    /// Counts outcomes, holds gaps, dead-letters the invalid. Returns the
    /// orders that advanced; `None` when cancelled before the held events
    /// were stored (the batch is not committed and comes again).
    pub(super) async fn settle(
        &self,
        events: &[Event],
        outcomes: &[Outcome],
        token: &CancellationToken,
    ) -> Option<HashSet<Uuid>> {
        let name = self.projection.name();
        let mut advanced = HashSet::new();
        let mut gaps = Vec::new();
        let now = time::OffsetDateTime::now_utc();
        // Looked up once a batch, counted once a batch: per event they cost
        // a registry lookup each.
        let visible =
            metrics::histogram!("projector_commit_to_visible_seconds", "projector" => name);
        let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
        for (event, outcome) in events.iter().zip(outcomes) {
            let label = match outcome {
                Outcome::Applied => {
                    advanced.insert(event.order_id());
                    visible.record((now - event.envelope.occurred_at).as_seconds_f64().max(0.0));
                    "applied"
                }
                Outcome::Duplicate => "duplicate",
                Outcome::Gap => {
                    gaps.push(event);
                    "held"
                }
                Outcome::Invalid(reason) => {
                    let message = envelope_message(event);
                    self.dead_letter_or_stall(&message, reason, self.settings.max_attempts)
                        .await
                }
            };
            *counts.entry(label).or_default() += 1;
            // One span per event in the trace it was published with, so a
            // trace runs from the command's request to each read model.
            let span = tracing::info_span!(
                "projector.event",
                projector = name,
                event_id = %event.envelope.event_id,
                order_id = %event.order_id(),
                version = event.version(),
                outcome = label,
            );
            if !span.is_disabled() {
                orderflow_service::telemetry::continue_trace(&span, event.traceparent.as_deref());
            }
        }
        for (label, count) in counts {
            metrics::counter!("projector_events_total", "projector" => name, "outcome" => label)
                .increment(count);
        }
        if !gaps.is_empty() {
            self.held_known
                .store(true, std::sync::atomic::Ordering::Relaxed);
            loop {
                match self
                    .held
                    .hold(
                        &gaps,
                        "an earlier version of the order has not been applied",
                    )
                    .await
                {
                    Ok(()) => break,
                    Err(err) => {
                        if !self
                            .transient(&format!("holding events: {err}"), token)
                            .await
                        {
                            return None;
                        }
                    }
                }
            }
        }
        Some(advanced)
    }
}
