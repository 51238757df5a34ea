//! The replay check and the rolling upgrade, on the checked-in history
//! (`tests/fixtures/history.jsonl`: v1 and v2 records of the same and of
//! different orders, redeliveries, an out-of-order pair, a forged copy).
//!
//! - Replayed into an empty store by today's projector (a rebuild by replay
//!   over a mixed history), it gives the checked-in snapshot of each store.
//! - Deployed consumers first (the projector upgraded before the producers
//!   write v2), nothing is dead-lettered and the store ends at the snapshot.
//! - Deployed producers first, the projector of the release before v2 (the
//!   same binary with `--schema-version-cap 1`, see below) dead-letters each
//!   v2 record with a reason that says "newer schema", keeps applying the
//!   rest and holds what depends on them; once upgraded, `orderctl dlq
//!   replay` (its library call) brings the store to the same snapshot.
//!
//! Why a cap and not the previous release's binary: building a second
//! workspace from an older commit in every test run costs minutes on two
//! cores. The cap lowers the newest version `decode` accepts, so the refusal
//! is the very code path an old consumer runs (`DecodeError::NewerSchema`,
//! then the dead-letter topic); nothing else in the binary changes.

use std::time::Duration;

use futures::FutureExt as _;
use orderflow_ops::dlq::DeadLetterTopic;
use orderflow_testkit::{eventually, kafka_config, unique_name};
use projector_suite::backends::{Env, read_state};
use projector_suite::events::messages;
use projector_suite::history::{assert_snapshot, events, reachable_versions, upgrade_point};
use projector_suite::{Backend, produce, wait_for_versions};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::cases::name;

const DEADLINE: Duration = Duration::from_secs(120);
/// The release before `OrderPlaced` v2 understood schema version 1 only.
const OLD_RELEASE: &[&str] = &["--schema-version-cap", "1"];

fn snapshot(backend: Backend) -> String {
    format!("history/{}.json", name(backend))
}

async fn settle(backend: Backend, env: &Env, what: &str, expected: &[(uuid::Uuid, i64)]) -> Value {
    let env = env.clone();
    wait_for_versions(what, DEADLINE, expected, move || {
        let env = env.clone();
        async move { read_state(backend, &env).await }.boxed()
    })
    .await
}

fn dead_letters(env: &Env) -> DeadLetterTopic {
    DeadLetterTopic {
        config: kafka_config(),
        topic: env.dlq_topic.clone(),
        group: unique_name("history-dlq"),
    }
}

pub async fn the_history_replays_to_the_snapshot(backend: Backend) {
    let env = Env::new(&format!("{}-history", name(backend))).await;
    let history = events();
    produce(&env.brokers, &env.topic, &messages(&history)).await;
    let running = backend.start(&env);
    let state = settle(
        backend,
        &env,
        "the whole history",
        &reachable_versions(&history),
    )
    .await;
    running.stop().await;
    assert_snapshot(&snapshot(backend), &state);
    let letters = dead_letters(&env).list(None).await.expect("list");
    assert!(letters.is_empty(), "nothing dead-lettered: {letters:?}");
}

pub async fn consumers_first_then_producers_dead_letters_nothing(backend: Backend) {
    let env = Env::new(&format!("{}-upgrade-ok", name(backend))).await;
    let history = events();
    let (before, after) = history.split_at(upgrade_point(&history));

    // The old release runs while only v1 is written.
    let old = backend.start_with(&env, OLD_RELEASE);
    produce(&env.brokers, &env.topic, &messages(before)).await;
    settle(backend, &env, "the v1 records", &reachable_versions(before)).await;
    old.stop().await;

    // Consumers upgraded; then producers write v2.
    let new = backend.start(&env);
    produce(&env.brokers, &env.topic, &messages(after)).await;
    let state = settle(
        backend,
        &env,
        "the whole history",
        &reachable_versions(&history),
    )
    .await;
    new.stop().await;
    let letters = dead_letters(&env).list(None).await.expect("list");
    assert!(letters.is_empty(), "nothing dead-lettered: {letters:?}");
    assert_snapshot(&snapshot(backend), &state);
}

pub async fn producers_first_dead_letters_newer_schema_and_replay_heals(backend: Backend) {
    let env = Env::new(&format!("{}-upgrade-late", name(backend))).await;
    let history = events();
    let v2: Vec<_> = history.iter().filter(|e| e.schema_version > 1).collect();
    let understood: Vec<_> = history
        .iter()
        .filter(|e| e.schema_version == 1)
        .cloned()
        .collect();

    // The old release meets the whole history, v2 records included.
    let old = backend.start_with(&env, OLD_RELEASE);
    produce(&env.brokers, &env.topic, &messages(&history)).await;
    let topic = dead_letters(&env);
    let letters = eventually("every v2 record dead-lettered", DEADLINE, || async {
        let letters = topic.list(None).await.ok()?;
        (letters.len() == v2.len()).then_some(letters)
    })
    .await;
    for letter in &letters {
        let reason = letter.reason.as_deref().unwrap_or_default();
        assert!(
            reason.contains("newer schema") && reason.contains("OrderPlaced schema_version 2"),
            "the reason says why: {reason:?}"
        );
        // `orderctl dlq list` (this build, already upgraded) says it reads
        // the letter now, so a replay will apply it.
        let event = letter.event.as_ref().expect("readable envelope");
        assert_eq!(event.schema_version, 2);
        assert_eq!(event.decode_error, None);
    }
    // The orders it can read are applied meanwhile; the v2 orders are not
    // there (their later v1 events are held, not applied out of order).
    let state = settle(
        backend,
        &env,
        "the orders the old release reads",
        &reachable_versions(&understood),
    )
    .await;
    for placed in &v2 {
        let id = placed.aggregate_id.to_string();
        let in_v1 = understood
            .iter()
            .any(|e| e.aggregate_id == placed.aggregate_id && e.aggregate_version == 1);
        if !in_v1 {
            assert!(
                state[&id].is_null(),
                "{id} must wait for its OrderPlaced: {}",
                state[&id]
            );
        }
    }
    old.stop().await;

    // Upgraded, the projector takes the dead letters back.
    let new = backend.start(&env);
    let report = topic
        .replay(&env.topic, None, &CancellationToken::new())
        .await
        .expect("replay");
    assert_eq!(report.replayed, v2.len() as u64, "{report:?}");
    let state = settle(
        backend,
        &env,
        "the whole history after the replay",
        &reachable_versions(&history),
    )
    .await;
    new.stop().await;
    assert_snapshot(&snapshot(backend), &state);
}

/// The rebuild path (`orderctl rebuild summary --from kafka`): the summary
/// table emptied behind the projector's back, then rebuilt from the mixed
/// history on the topic into a shadow table and swapped in, equals the same
/// snapshot; the rebuild decodes (and upcasts) through the same door.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_rebuilt_from_the_mixed_history_is_the_snapshot() {
    use orderflow_ops::rebuild::progress::Silent;
    use orderflow_ops::rebuild::{KafkaSource, Source, rebuild_summary};

    let backend = Backend::Summary;
    let env = Env::new("summary-history-rebuild").await;
    let history = events();
    produce(&env.brokers, &env.topic, &messages(&history)).await;
    let live = backend.start(&env);
    settle(
        backend,
        &env,
        "the live projector",
        &reachable_versions(&history),
    )
    .await;
    live.stop().await;
    sqlx::query("DELETE FROM order_summary")
        .execute(&env.db.pool)
        .await
        .expect("empty the live table");

    let write = orderflow_testkit::fresh_write_database("history-rebuild").await;
    let source = Source::Kafka(KafkaSource {
        config: kafka_config(),
        topic: env.topic.clone(),
        live_group: env.group.clone(),
    });
    rebuild_summary(
        &write.pool,
        &env.db.pool,
        &source,
        100,
        &Silent,
        &CancellationToken::new(),
    )
    .await
    .expect("rebuild from kafka");
    assert_snapshot(&snapshot(backend), &read_state(backend, &env).await);
}
