//! `orderctl dlq replay`: an event a projector gave up on, re-driven once
//! its cause is fixed, is applied and releases what was held behind it;
//! the dead letter is then marked replayed and not sent twice.

use std::time::Duration;

use futures::FutureExt as _;
use orderflow_ops::dlq::DeadLetterTopic;
use orderflow_testkit::{eventually, kafka_config, unique_name};
use projector_suite::backends::{Env, read_state};
use projector_suite::events::{final_versions, messages, order_events, order_id};
use projector_suite::{Backend, produce, wait_for_versions};
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(120);

async fn held(env: &Env) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE parked) FROM held_events")
        .fetch_one(&env.db.pool)
        .await
        .expect("held events")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_dead_letter_is_applied_and_releases_what_it_held() {
    let env = Env::new("dlq-replay").await;
    // The bug: the read database refuses one customer's orders.
    sqlx::query(
        "ALTER TABLE order_summary ADD CONSTRAINT refuses_customer_1 CHECK (customer_name <> 'Customer 1')",
    )
    .execute(&env.db.pool)
    .await
    .expect("constraint");
    let running = Backend::Summary.start(&env);
    let poisoned = order_events(1);
    let healthy = order_events(2);
    let last = final_versions(&poisoned)[0].1;
    assert!(last >= 2, "order 1 has events after its first");
    produce(&env.brokers, &env.topic, &messages(&poisoned)).await;
    produce(&env.brokers, &env.topic, &messages(&healthy)).await;

    let read = {
        let env = env.clone();
        move || {
            let env = env.clone();
            async move { read_state(Backend::Summary, &env).await }.boxed()
        }
    };
    wait_for_versions(
        "the healthy order",
        DEADLINE,
        &final_versions(&healthy),
        &read,
    )
    .await;
    let dead_letters = DeadLetterTopic {
        config: kafka_config(),
        topic: env.dlq_topic.clone(),
        group: unique_name("dlq-replay"),
    };
    let letters = eventually("the dead letter", DEADLINE, || async {
        let letters = dead_letters.list(None).await.expect("list");
        (letters.len() == 1).then_some(letters)
    })
    .await;
    let letter = &letters[0];
    assert_eq!(letter.consumer.as_deref(), Some("summary-projector"));
    let event = letter.event.as_ref().expect("readable envelope");
    assert_eq!(
        (event.event_type.as_str(), event.order_id, event.version),
        ("OrderPlaced", order_id(1), 1)
    );
    assert!(
        letter
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("refuses_customer_1")),
        "the reason names the constraint: {:?}",
        letter.reason
    );
    assert!(!letter.replayed);
    // What follows it waits, then is parked.
    eventually("the later versions parked", DEADLINE, || async {
        (held(&env).await == (last - 1, last - 1)).then_some(())
    })
    .await;
    assert!(read_state(Backend::Summary, &env).await[order_id(1).to_string()].is_null());

    // The fix, then the replay.
    sqlx::query("ALTER TABLE order_summary DROP CONSTRAINT refuses_customer_1")
        .execute(&env.db.pool)
        .await
        .expect("fix");
    let token = CancellationToken::new();
    let report = dead_letters
        .replay(&env.topic, None, &token)
        .await
        .expect("replay");
    assert_eq!((report.replayed, report.skipped), (1, 0));
    assert!(report.complete);
    wait_for_versions(
        "the replayed order, with what it held",
        DEADLINE,
        &final_versions(&poisoned),
        &read,
    )
    .await;
    eventually("nothing held", DEADLINE, || async {
        (held(&env).await == (0, 0)).then_some(())
    })
    .await;

    // Marked replayed; a second replay sends nothing.
    let letters = dead_letters.list(None).await.expect("list");
    assert_eq!(letters.len(), 1);
    assert!(letters[0].replayed);
    let again = dead_letters
        .replay(&env.topic, None, &token)
        .await
        .expect("replay again");
    assert_eq!(again.replayed, 0);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_can_be_limited_to_one_projector() {
    let env = Env::new("dlq-filter").await;
    // Two dead letters from two projectors, written as the projectors do.
    let config = kafka_config();
    for consumer in ["search-projector", "status-projector"] {
        let letters = orderflow_projector::dlq::DeadLetters::new(
            config.clone(),
            env.dlq_topic.clone(),
            consumer,
        )
        .expect("producer");
        let event = &order_events(3)[0];
        let message = orderflow_projector::dlq::RawMessage {
            key: Some(event.aggregate_id.to_string().into_bytes()),
            payload: Some(serde_json::to_vec(event).expect("json")),
            headers: vec![],
            partition: 0,
            offset: 7,
        };
        letters
            .send(&message, "store refused", 2)
            .await
            .expect("dead letter");
    }
    let dead_letters = DeadLetterTopic {
        config,
        topic: env.dlq_topic.clone(),
        group: unique_name("dlq-filter"),
    };
    let token = CancellationToken::new();
    let report = dead_letters
        .replay(&env.topic, Some("status-projector"), &token)
        .await
        .expect("replay");
    assert_eq!((report.replayed, report.skipped), (1, 1));
    // The other projector's dead letter is still there to replay.
    let listed = dead_letters
        .list(Some("search-projector"))
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    assert!(
        !listed[0].replayed,
        "not marked replayed by the filtered run"
    );
    let rest = dead_letters
        .replay(&env.topic, Some("search-projector"), &token)
        .await
        .expect("replay the rest");
    assert_eq!((rest.replayed, rest.skipped), (1, 1));
    // The one copy on the events topic carries where it came from.
    let consumer: rdkafka::consumer::StreamConsumer = kafka_config()
        .set("group.id", unique_name("dlq-filter-check"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    use rdkafka::Message as _;
    use rdkafka::consumer::Consumer as _;
    use rdkafka::message::Headers as _;
    consumer.subscribe(&[&env.topic]).expect("subscribe");
    let copy = tokio::time::timeout(DEADLINE, consumer.recv())
        .await
        .expect("a replayed copy")
        .expect("consume");
    let headers: Vec<(String, String)> = copy
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    (
                        h.key.to_owned(),
                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "dlq_replayed_from" && v.starts_with(&env.dlq_topic)),
        "{headers:?}"
    );
    assert!(
        !headers.iter().any(|(k, _)| k == "dlq_reason"),
        "the dead-letter headers stay behind: {headers:?}"
    );
    assert_eq!(copy.key(), Some(order_id(3).to_string().as_bytes()));
}
