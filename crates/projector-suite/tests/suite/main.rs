//! The article's projection tests, run against every projector: rebuild
//! from a known sequence equals a checked-in snapshot; stale and forged
//! redeliveries (an older version after newer ones, a copy of an applied
//! version under a new event id) change nothing, nor does an event id the
//! inbox has seen carrying another version; the held-event timer
//! reaches every held order; a poison whose dead letter cannot be written
//! stops only its own partition; a version
//! that arrives early is held and applied in order; poison goes to the
//! dead-letter topic while the partition keeps moving. Plus the store
//! outages for the search and status projectors, and the dead-letter
//! replay of `orderctl`. And the schema-evolution checks on the checked-in
//! history: its replay gives the checked-in snapshots, and both orders of a
//! rolling upgrade end there too.

mod cases;
mod dlq_failure;
mod dlq_replay;
mod guards;
mod history;
mod outage;
mod plans;

macro_rules! for_every_backend {
    ($($case:ident),* $(,)?) => {
        mod summary {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { crate::$case(projector_suite::Backend::Summary).await }) *
        }
        mod search {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { crate::$case(projector_suite::Backend::Search).await }) *
        }
        mod status {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { crate::$case(projector_suite::Backend::Status).await }) *
        }
    };
}

use cases::{
    a_gap_that_stays_open_is_parked, a_rebalance_mid_stream_loses_nothing,
    an_early_version_is_held_then_applied_in_order,
    poison_goes_to_the_dead_letter_topic_and_the_partition_moves_on, rebuild_matches_the_snapshot,
};
use dlq_failure::a_poison_that_cannot_be_dead_lettered_stops_only_its_partition;
use guards::{
    an_event_id_the_batch_before_recorded_is_never_applied_again,
    an_event_id_the_inbox_has_seen_is_never_applied_again,
    stale_and_forged_redeliveries_never_move_an_order_back,
    the_held_timer_reaches_every_held_order,
};
use history::{
    consumers_first_then_producers_dead_letters_nothing,
    producers_first_dead_letters_newer_schema_and_replay_heals,
    the_history_replays_to_the_snapshot,
};

for_every_backend!(
    rebuild_matches_the_snapshot,
    stale_and_forged_redeliveries_never_move_an_order_back,
    an_event_id_the_inbox_has_seen_is_never_applied_again,
    an_event_id_the_batch_before_recorded_is_never_applied_again,
    the_held_timer_reaches_every_held_order,
    a_poison_that_cannot_be_dead_lettered_stops_only_its_partition,
    an_early_version_is_held_then_applied_in_order,
    a_gap_that_stays_open_is_parked,
    poison_goes_to_the_dead_letter_topic_and_the_partition_moves_on,
    a_rebalance_mid_stream_loses_nothing,
    the_history_replays_to_the_snapshot,
    consumers_first_then_producers_dead_letters_nothing,
    producers_first_dead_letters_newer_schema_and_replay_heals,
);
