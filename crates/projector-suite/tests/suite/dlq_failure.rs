//! A poison event whose dead letter cannot be written stops its own
//! partition only: the dead-letter topic is deleted while the projector
//! runs, a poison record arrives on partition 0, and orders on partitions 1
//! and 2 stay visible while partition 0 waits, named on `/readyz`. Once the
//! topology is applied again the dead letter is written and partition 0
//! carries on from right after the poison.

use std::time::Duration;

use futures::FutureExt as _;
use orderflow_testkit::{eventually, kafka_config};
use projector_suite::backends::{Env, read_state};
use projector_suite::events::{messages, order_events, order_id};
use projector_suite::{Backend, produce_to, wait_for_versions};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::Headers as _;

const DEADLINE: Duration = Duration::from_secs(120);

async fn readyz(port: u16) -> (u16, String) {
    let response = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .expect("readyz");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

pub async fn a_poison_that_cannot_be_dead_lettered_stops_only_its_partition(backend: Backend) {
    let env = Env::new(&format!("{}-dlqdown", crate::cases::name(backend))).await;
    let running = backend.start(&env);
    // Every partition has been consumed from once, so the projector owns them.
    for partition in 0..3 {
        let first = order_events(100 + partition as u32 * 5);
        produce_to(&env.brokers, &env.topic, partition, &messages(&first[..1])).await;
    }
    let env2 = env.clone();
    wait_for_versions(
        "the warm-up orders",
        DEADLINE,
        &(0..3)
            .map(|p| (order_id(100 + p * 5), 1))
            .collect::<Vec<_>>(),
        move || {
            let env = env2.clone();
            async move { read_state(backend, &env).await }.boxed()
        },
    )
    .await;

    let admin: AdminClient<DefaultClientContext> = kafka_config().create().expect("admin");
    let deleted = admin
        .delete_topics(&[&env.dlq_topic], &AdminOptions::new())
        .await
        .expect("delete the dead-letter topic");
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");
    eventually(
        "readyz to report the missing dead-letter topic",
        DEADLINE,
        || async {
            let (status, body) = readyz(running.ops_port).await;
            (status == 503 && body.contains(&env.dlq_topic)).then_some(())
        },
    )
    .await;

    // Partition 0: a poison record, then a good order behind it.
    // Partitions 1 and 2: good orders.
    produce_to(
        &env.brokers,
        &env.topic,
        0,
        &[(order_id(200), b"{not json".to_vec())],
    )
    .await;
    let behind = order_events(205);
    produce_to(&env.brokers, &env.topic, 0, &messages(&behind[..1])).await;
    let others = [order_events(210), order_events(215)];
    for (n, events) in others.iter().enumerate() {
        produce_to(&env.brokers, &env.topic, n as i32 + 1, &messages(events)).await;
    }
    let expected: Vec<_> = others
        .iter()
        .map(|e| (e[0].aggregate_id, e.len() as i64))
        .collect();
    let env2 = env.clone();
    let state = wait_for_versions(
        "orders on the other partitions to stay visible",
        DEADLINE,
        &expected,
        move || {
            let env = env2.clone();
            async move { read_state(backend, &env).await }.boxed()
        },
    )
    .await;
    eventually("readyz to name the paused partition", DEADLINE, || async {
        let (status, body) = readyz(running.ops_port).await;
        (status == 503 && body.contains("partition 0 paused at offset")).then_some(())
    })
    .await;
    assert!(
        state.get(order_id(205).to_string()).is_none(),
        "an event behind the poison on its partition was applied before the poison was dead-lettered"
    );

    // The topology again, as `orderctl setup` applies it.
    let settings = orderflow_topology::TopicSettings::default();
    let dlq = settings.specs(&env.topic, &env.dlq_topic).remove(1);
    orderflow_topology::topics::ensure_all(&kafka_config(), &[dlq])
        .await
        .expect("re-create the dead-letter topic");
    let env2 = env.clone();
    wait_for_versions(
        "the order behind the poison once the dead letter is written",
        DEADLINE,
        &[(order_id(205), 1)],
        move || {
            let env = env2.clone();
            async move { read_state(backend, &env).await }.boxed()
        },
    )
    .await;
    eventually("readyz to recover", DEADLINE, || async {
        (readyz(running.ops_port).await.0 == 200).then_some(())
    })
    .await;
    running.stop().await;

    let consumer: StreamConsumer = kafka_config()
        .set("group.id", orderflow_testkit::unique_name("dlq-check"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&env.dlq_topic]).expect("subscribe");
    let message = tokio::time::timeout(DEADLINE, consumer.recv())
        .await
        .expect("the poison reaches the re-created dead-letter topic")
        .expect("consume");
    use rdkafka::Message as _;
    assert_eq!(message.payload(), Some(&b"{not json"[..]));
    let reason = message
        .headers()
        .and_then(|h| {
            h.iter()
                .find(|h| h.key == "dlq_reason")
                .and_then(|h| h.value)
        })
        .map(|v| String::from_utf8_lossy(v).into_owned());
    assert!(
        reason
            .as_deref()
            .is_some_and(|r| r.contains("malformed envelope")),
        "{reason:?}"
    );
}
