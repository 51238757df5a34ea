use std::time::Duration;

use clap::Parser as _;
use orderflow_testkit::{TestDatabase, kafka_brokers, kafka_config, unique_name};
use outbox_relay::Settings;
use rdkafka::Message as _;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::Headers as _;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::{
    append, append_in, append_large, consume_all, drained, events_topic, free_port, outbox_db,
};

/// Runs the relay in this process until the returned token is cancelled.
pub(crate) fn start_relay(
    db: &TestDatabase,
    topic: &str,
    extra: &[&str],
) -> (
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let mut args = vec![
        "outbox-relay".to_owned(),
        "--write-database-url".into(),
        db.url.clone(),
        "--kafka-brokers".into(),
        kafka_brokers(),
        "--events-topic".into(),
        topic.to_owned(),
        "--ops-addr".into(),
        format!("127.0.0.1:{}", free_port()),
        "--standby-poll".into(),
        "200ms".into(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let settings = Settings::try_parse_from(args).expect("settings");
    let token = CancellationToken::new();
    let handle = tokio::spawn(outbox_relay::run(settings, token.clone()));
    (token, handle)
}

#[tokio::test]
async fn publishes_envelopes_keyed_by_order_with_headers() {
    let db = outbox_db().await;
    let topic = events_topic().await;
    let order = Uuid::now_v7();
    for version in 1..=3 {
        append(&db, order, version).await;
    }
    // Read before they are published: publishing moves the rows out of
    // `outbox`, envelope and all.
    let rows: Vec<(Uuid, serde_json::Value)> =
        sqlx::query_as("SELECT event_id, envelope FROM outbox ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .expect("rows");
    let (token, relay) = start_relay(&db, &topic, &[]);
    drained(&db, Duration::from_secs(60)).await;

    let consumer: StreamConsumer = kafka_config()
        .set("group.id", unique_name("relay-headers"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    for (event_id, envelope) in rows {
        let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .expect("message in time")
            .expect("consume");
        assert_eq!(message.key(), Some(order.to_string().as_bytes()));
        let value: serde_json::Value =
            serde_json::from_slice(message.payload().expect("payload")).expect("json");
        assert_eq!(value, envelope, "the message value is the stored envelope");
        let headers = message.headers().expect("headers");
        let header = |name: &str| {
            headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(header("event_id"), Some(event_id.to_string()));
        assert_eq!(header("event_type").as_deref(), Some("OrderDelivered"));
        assert_eq!(header("schema_version").as_deref(), Some("1"));
        assert_eq!(
            header("traceparent").as_deref(),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
    }
    token.cancel();
    relay.await.expect("join").expect("relay stops cleanly");
}

#[tokio::test]
async fn visibility_gap_does_not_lose_the_late_committer() {
    let db = outbox_db().await;
    let topic = events_topic().await;
    let (token, relay) = start_relay(&db, &topic, &["--poll-interval", "100ms"]);
    let slow_order = Uuid::now_v7();
    let fast_order = Uuid::now_v7();

    // The slow transaction takes the lower id and stays open.
    let mut slow = db.pool.begin().await.expect("begin");
    append_in(&mut slow, slow_order, 1).await;
    for version in 1..=3 {
        append(&db, fast_order, version).await;
    }
    // Later rows are published while the earlier id is still invisible.
    drained(&db, Duration::from_secs(60)).await;
    let (published, min_published): (i64, i64) =
        sqlx::query_as("SELECT count(*), min(id) FROM outbox_published")
            .fetch_one(&db.pool)
            .await
            .expect("count");
    assert_eq!(
        published, 3,
        "the fast order's rows went out while the slow one was open"
    );
    slow.commit().await.expect("commit");
    let slow_id: i64 = sqlx::query_scalar(
        "SELECT id FROM outbox WHERE aggregate_id = $1 \
         UNION ALL SELECT id FROM outbox_published WHERE aggregate_id = $1",
    )
    .bind(slow_order)
    .fetch_one(&db.pool)
    .await
    .expect("slow row");
    assert!(
        slow_id < min_published,
        "the late row has the lowest id ({slow_id} < {min_published})"
    );

    drained(&db, Duration::from_secs(60)).await;
    let seen = consume_all(&topic, &[slow_order], 1, Duration::from_secs(60)).await;
    assert_eq!(seen.applied.get(&slow_order), Some(&1));
    let seen = consume_all(&topic, &[fast_order], 3, Duration::from_secs(60)).await;
    assert_eq!(seen.duplicates, 0);
    token.cancel();
    relay.await.expect("join").expect("relay stops cleanly");
}

#[tokio::test]
async fn refuses_to_start_without_its_topic() {
    let db = outbox_db().await;
    // Auto-create is off on the broker, as in production: a relay started
    // before `orderctl setup` must say so, not publish into nothing.
    let topic = unique_name("relay-missing").replace('_', "-");
    let (_token, relay) = start_relay(&db, &topic, &[]);
    let result = tokio::time::timeout(Duration::from_secs(60), relay)
        .await
        .expect("the relay gives up at once")
        .expect("join");
    let message = format!("{:#}", result.expect_err("must refuse"));
    assert!(
        message.contains(&format!("the events topic {topic} does not exist"))
            && message.contains("orderctl setup"),
        "{message}"
    );
}

/// An envelope over the topic's `max.message.bytes` is parked: the other
/// orders keep flowing, its own order's later rows wait behind it, and once
/// the limit is raised a re-drive publishes it and its followers in order.
#[tokio::test]
async fn a_row_kafka_cannot_take_is_parked_and_only_its_order_waits() {
    let db = outbox_db().await;
    let topic = unique_name("relay-park").replace('_', "-");
    let settings = orderflow_topology::TopicSettings {
        partitions: 3,
        max_message_bytes: Some(4096),
        ..orderflow_topology::TopicSettings::default()
    };
    orderflow_topology::topics::ensure_all(
        &kafka_config(),
        &settings.specs(&topic, &format!("{topic}.dlq")),
    )
    .await
    .expect("topics");
    let (stuck, flowing) = (Uuid::now_v7(), Uuid::now_v7());
    append(&db, stuck, 1).await;
    append_large(&db, stuck, 2, 10_000).await;
    append(&db, stuck, 3).await;
    for version in 1..=3 {
        append(&db, flowing, version).await;
    }
    let (token, relay) = start_relay(&db, &topic, &["--poll-interval", "200ms"]);

    consume_all(&topic, &[flowing], 3, Duration::from_secs(60)).await;
    consume_all(&topic, &[stuck], 1, Duration::from_secs(60)).await;
    let parked = orderflow_testkit::eventually(
        "the large row to be parked",
        Duration::from_secs(60),
        || async {
            let mut conn = db.pool.acquire().await.ok()?;
            let rows = orderflow_outbox::parked(&mut conn).await.ok()?;
            (rows.len() == 1).then_some(rows)
        },
    )
    .await;
    assert_eq!(
        (parked[0].aggregate_id, parked[0].aggregate_version),
        (stuck, 2)
    );
    assert_eq!(parked[0].waiting, 1, "version 3 waits behind it");
    let reason = parked[0].park_reason.clone().unwrap_or_default();
    assert!(reason.contains("max.message.bytes (4096)"), "{reason}");
    // Everything else is marked published just after the park.
    orderflow_testkit::eventually(
        "only the stuck order's rows left",
        Duration::from_secs(60),
        || async {
            let unpublished: Vec<(Uuid, i64)> =
                sqlx::query_as("SELECT aggregate_id, aggregate_version FROM outbox ORDER BY id")
                    .fetch_all(&db.pool)
                    .await
                    .ok()?;
            (unpublished == vec![(stuck, 2), (stuck, 3)]).then_some(())
        },
    )
    .await;

    // The fix: a larger limit on the topic; then the re-drive.
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        kafka_config().create().expect("admin");
    let alter = rdkafka::admin::AlterConfig::new(rdkafka::admin::ResourceSpecifier::Topic(&topic))
        .set("max.message.bytes", "1048588");
    let altered = admin
        .alter_configs([&alter], &rdkafka::admin::AdminOptions::new())
        .await
        .expect("alter");
    assert!(altered.iter().all(Result::is_ok), "{altered:?}");
    let mut conn = db.pool.acquire().await.expect("conn");
    assert_eq!(
        orderflow_outbox::redrive(&mut conn, None)
            .await
            .expect("redrive"),
        1
    );
    drop(conn);
    let seen = consume_all(&topic, &[stuck, flowing], 3, Duration::from_secs(60)).await;
    assert_eq!(seen.applied.get(&stuck), Some(&3));
    drained(&db, Duration::from_secs(60)).await;
    token.cancel();
    relay.await.expect("join").expect("relay stops cleanly");
}
