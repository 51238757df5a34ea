//! Several batches in flight (`RELAY_PIPELINE_DEPTH`): a backlog far larger
//! than one batch goes out in per-order order, nothing lost, while new rows
//! keep committing behind it, one of them late (the visibility gap).

use std::time::Duration;

use clap::Parser as _;
use orderflow_testkit::{TestDatabase, kafka_brokers};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::{append, append_in, consume_all, drained, events_topic, free_port, outbox_db};

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

    let settings = outbox_relay::Settings::try_parse_from([
        "outbox-relay",
        "--write-database-url",
        &db.url,
        "--kafka-brokers",
        &kafka_brokers(),
        "--events-topic",
        &topic,
        "--ops-addr",
        &format!("127.0.0.1:{}", free_port()),
        "--batch-size",
        "50",
        "--pipeline-depth",
        "8",
        "--poll-interval",
        "100ms",
    ])
    .expect("settings");
    let token = CancellationToken::new();
    let relay = tokio::spawn(outbox_relay::run(settings, token.clone()));

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
