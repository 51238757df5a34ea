//! Applying a batch to order summaries in memory: the step the summary and
//! search projectors share (each loads the current summaries from its own
//! store first and writes the changed ones back after).

use std::collections::{HashMap, HashSet};

use orderflow_readmodel::{OrderSummary, Step, apply};
use uuid::Uuid;

use crate::{Event, Outcome};

/// Folds `events` (in per-order order) into `current`; returns one outcome
/// per event and the orders whose summary changed.
pub fn fold_summaries(
    current: &mut HashMap<Uuid, OrderSummary>,
    events: &[Event],
) -> (Vec<Outcome>, HashSet<Uuid>) {
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
    (outcomes, changed)
}

/// The events to record in the inbox: those applied or found already applied.
pub fn processed<'e>(
    events: &'e [Event],
    outcomes: &'e [Outcome],
) -> impl Iterator<Item = &'e Event> {
    events
        .iter()
        .zip(outcomes)
        .filter(|(_, o)| matches!(o, Outcome::Applied | Outcome::Duplicate))
        .map(|(e, _)| e)
}

/// The distinct orders of a batch.
pub fn orders(events: &[Event]) -> Vec<Uuid> {
    events
        .iter()
        .map(Event::order_id)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect()
}
