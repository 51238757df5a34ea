//! The article's projection tests, run against every projector: rebuild
//! from a known sequence equals a checked-in snapshot; replaying the
//! sequence changes nothing; redelivered events change nothing; a version
//! that arrives early is held and applied in order; poison goes to the
//! dead-letter topic while the partition keeps moving. Plus the store
//! outages for the search and status projectors, and the dead-letter
//! replay of `orderctl`.

mod cases;
mod dlq_replay;
mod outage;

macro_rules! for_every_backend {
    ($($case:ident),* $(,)?) => {
        mod summary {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { crate::cases::$case(projector_suite::Backend::Summary).await }) *
        }
        mod search {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { crate::cases::$case(projector_suite::Backend::Search).await }) *
        }
        mod status {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { crate::cases::$case(projector_suite::Backend::Status).await }) *
        }
    };
}

for_every_backend!(
    rebuild_matches_the_snapshot,
    replay_is_idempotent,
    redelivered_events_change_nothing,
    an_early_version_is_held_then_applied_in_order,
    a_gap_that_stays_open_is_parked,
    poison_goes_to_the_dead_letter_topic_and_the_partition_moves_on,
    a_rebalance_mid_stream_loses_nothing,
);
