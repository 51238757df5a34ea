//! Several batches in flight (`RELAY_PIPELINE_DEPTH`): a backlog far larger
//! than one batch goes out in per-order order, nothing lost, while new rows
//! keep committing behind it, one of them late (the visibility gap); and
//! rows trickling in one at a time go out once each.

use std::time::Duration;

use orderflow_testkit::TestDatabase;
use uuid::Uuid;

use crate::helpers::{append, append_in, consume_all, drained, events_topic, outbox_db};
use crate::publishing::start_relay;

/// `versions` events for each of `orders`, in one statement, in id order by
/// groups of ten orders (the group's v1s, its v2s, …, then the next group):
/// each batch of 50 holds five versions of each of ten orders, and each
/// order spans six batches.
async fn backlog(db: &TestDatabase, orders: &[Uuid], versions: i64) {
    sqlx::query(
        "INSERT INTO outbox (event_id, event_type, schema_version, aggregate_type,
                             aggregate_id, aggregate_version, envelope)
         SELECT gen_random_uuid(), 'OrderDelivered', 1, 'order', o.id, v,
                jsonb_build_object('aggregate_id', o.id, 'aggregate_version', v)
         FROM generate_series(1, $2::bigint) AS v,
              unnest($1::uuid[]) WITH ORDINALITY AS o(id, n)
         ORDER BY (o.n - 1) / 10, v, o.n",
    )
    .bind(orders)
    .bind(versions)
    .execute(&db.pool)
    .await
    .expect("backlog");
}

#[tokio::test]
async fn a_backlog_of_many_batches_in_flight_keeps_per_order_order() {
    const ORDERS: usize = 200;
    const VERSIONS: i64 = 30; // 6,000 rows: 120 batches of 50, 8 in flight
    let db = outbox_db().await;
    let topic = events_topic().await;
    let orders: Vec<Uuid> = (0..ORDERS).map(|_| Uuid::now_v7()).collect();
    backlog(&db, &orders, VERSIONS).await;

    // A late committer: its id is below rows committed after it.
    let late = Uuid::now_v7();
    let mut open = db.pool.begin().await.expect("begin");
    append_in(&mut open, late, 1).await;
    let follower = Uuid::now_v7();
    append(&db, follower, 1).await;

    let (token, relay) = start_relay(
        &db,
        &topic,
        &[
            "--batch-size",
            "50",
            "--pipeline-depth",
            "8",
            "--poll-interval",
            "100ms",
        ],
    );

    // New versions of the same orders commit while the backlog drains.
    for order in orders.iter().take(20) {
        let mut tx = db.pool.begin().await.expect("begin");
        sqlx::query(
            "INSERT INTO outbox (event_id, event_type, schema_version, aggregate_type,
                                 aggregate_id, aggregate_version, envelope)
             VALUES (gen_random_uuid(), 'OrderDelivered', 1, 'order', $1, $2,
                     jsonb_build_object('aggregate_id', $1::uuid, 'aggregate_version', $2::bigint))",
        )
        .bind(order)
        .bind(VERSIONS + 1)
        .execute(&mut *tx)
        .await
        .expect("append");
        tx.commit().await.expect("commit");
    }
    open.commit().await.expect("commit the late row");
    drained(&db, Duration::from_secs(120)).await;

    // consume_all fails on any version that arrives before its predecessor.
    let seen = consume_all(
        &topic,
        &orders[..20],
        VERSIONS + 1,
        Duration::from_secs(120),
    )
    .await;
    assert!(seen.messages >= 20 * (VERSIONS as usize + 1));
    consume_all(&topic, &orders[20..], VERSIONS, Duration::from_secs(120)).await;
    let seen = consume_all(&topic, &[late, follower], 1, Duration::from_secs(60)).await;
    assert_eq!(seen.applied.get(&late), Some(&1), "the late row went out");
    token.cancel();
    relay.await.expect("join").expect("relay stops cleanly");
}

/// Messages on `topic`: the sum of its partitions' high watermarks. With no
/// fault, the relay sends every row exactly once, so this is the row count.
fn messages_on(topic: &str) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    let consumer: BaseConsumer = orderflow_testkit::kafka_config()
        .create()
        .expect("consumer");
    let timeout = Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .expect("metadata");
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            let (_, high) = consumer
                .fetch_watermarks(topic, p.id(), timeout)
                .expect("watermarks");
            high
        })
        .sum()
}

#[tokio::test]
async fn rows_trickling_in_go_out_once_each_and_in_order() {
    const ORDERS: usize = 20;
    const VERSIONS: i64 = 6;
    let db = outbox_db().await;
    let topic = events_topic().await;
    // Every batch lingers 100 ms in the producer while rows commit every
    // few milliseconds: each read finds a few new rows while the batch
    // before is still waiting for its acknowledgements, or acknowledged
    // and being marked. Those rows must be left out of the read (in
    // flight, or marking) and go out once, in their order's order.
    let (token, relay) = start_relay(
        &db,
        &topic,
        &[
            "--pipeline-depth",
            "4",
            "--poll-interval",
            "5ms",
            "--kafka-linger",
            "100ms",
        ],
    );

    // One event per transaction, the orders' versions interleaved, a few
    // milliseconds apart: many small batches.
    let orders: Vec<Uuid> = (0..ORDERS).map(|_| Uuid::now_v7()).collect();
    let mut tick = tokio::time::interval(Duration::from_millis(3));
    for version in 1..=VERSIONS {
        for order in &orders {
            tick.tick().await;
            append(&db, *order, version).await;
        }
    }
    drained(&db, Duration::from_secs(120)).await;

    let seen = consume_all(&topic, &orders, VERSIONS, Duration::from_secs(120)).await;
    assert_eq!(
        seen.duplicates, 0,
        "a row in flight or being marked was sent again"
    );
    assert_eq!(
        messages_on(&topic),
        ORDERS as i64 * VERSIONS,
        "every row went out exactly once"
    );
    token.cancel();
    relay.await.expect("join").expect("relay stops cleanly");
}
