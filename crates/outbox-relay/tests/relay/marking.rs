//! Marking by moving: a row Kafka acknowledged leaves `outbox` for the
//! narrow `outbox_published` (with its partition and offset), a system
//! upgraded in place keeps what it had published, and retention prunes the
//! old records.

use std::borrow::Cow;
use std::time::Duration;

use orderflow_testkit::{eventually, fresh_database};
use uuid::Uuid;

use crate::helpers::{append, drained, events_topic, outbox_db};
use crate::publishing::start_relay;

/// (id, order, version, partition, offset) of every published record.
type Published = Vec<(i64, Uuid, i64, Option<i32>, Option<i64>)>;

async fn published(pool: &sqlx::PgPool) -> Published {
    sqlx::query_as(
        "SELECT id, aggregate_id, aggregate_version, kafka_partition, kafka_offset \
         FROM outbox_published ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .expect("published")
}

#[tokio::test]
async fn acknowledged_rows_move_to_outbox_published_with_where() {
    let db = outbox_db().await;
    let topic = events_topic().await;
    let order = Uuid::now_v7();
    for version in 1..=3 {
        append(&db, order, version).await;
    }
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM outbox ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .expect("ids");
    let (token, relay) = start_relay(&db, &topic, &[]);
    drained(&db, Duration::from_secs(60)).await;
    token.cancel();
    relay.await.expect("join").expect("relay");

    let records = published(&db.pool).await;
    assert_eq!(
        records.iter().map(|r| (r.0, r.1, r.2)).collect::<Vec<_>>(),
        ids.iter()
            .zip(1..)
            .map(|(id, v)| (*id, order, v))
            .collect::<Vec<_>>(),
        "every row recorded once, under its own id"
    );
    // One order, one partition, offsets in version order.
    let partitions: Vec<Option<i32>> = records.iter().map(|r| r.3).collect();
    assert!(
        partitions
            .iter()
            .all(|p| p.is_some() && *p == partitions[0])
    );
    let offsets: Vec<i64> = records.iter().map(|r| r.4.expect("offset")).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    let (created, acked): (time::OffsetDateTime, time::OffsetDateTime) =
        sqlx::query_as("SELECT min(created_at), min(published_at) FROM outbox_published")
            .fetch_one(&db.pool)
            .await
            .expect("times");
    assert!(acked >= created, "published after it was created");
}

#[tokio::test]
async fn retention_prunes_only_old_published_records() {
    let db = outbox_db().await;
    let topic = events_topic().await;
    let (old, young) = (Uuid::now_v7(), Uuid::now_v7());
    append(&db, old, 1).await;
    append(&db, young, 1).await;
    let (token, relay) = start_relay(&db, &topic, &[]);
    drained(&db, Duration::from_secs(60)).await;
    token.cancel();
    relay.await.expect("join").expect("relay");
    // And one row still to publish, however old: never pruned.
    append(&db, Uuid::now_v7(), 1).await;
    sqlx::query("UPDATE outbox_published SET published_at = now() - interval '2 days' WHERE aggregate_id = $1")
        .bind(old)
        .execute(&db.pool)
        .await
        .expect("age");
    sqlx::query("UPDATE outbox SET created_at = now() - interval '3 days'")
        .execute(&db.pool)
        .await
        .expect("age");

    let mut conn = db.pool.acquire().await.expect("conn");
    let pruned = orderflow_outbox::prune(&mut conn, Duration::from_secs(24 * 3600), 1000)
        .await
        .expect("prune");
    assert_eq!(pruned, 1);
    let left: Vec<Uuid> = published(&db.pool).await.iter().map(|r| r.1).collect();
    assert_eq!(left, vec![young]);
    let unpublished: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&db.pool)
        .await
        .expect("outbox");
    assert_eq!(unpublished, 1, "a row still to publish stays");
}

/// A database at migration 0005 (the relay updating wide rows in place),
/// with rows published, pending and parked, upgraded by the setup's own
/// migrations: what was published moves over with where it was
/// acknowledged, the rest stays to publish (its envelopes unchanged by
/// 0007's move from jsonb to json), and the relay carries on.
#[tokio::test]
async fn an_outbox_upgraded_in_place_keeps_its_history_and_drains() {
    let db = fresh_database("relay_upgrade").await;
    let all = &orderflow_writemodel::MIGRATOR;
    let before = sqlx::migrate::Migrator {
        migrations: Cow::Owned(all.iter().filter(|m| m.version < 6).cloned().collect()),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    };
    before.run(&db.pool).await.expect("migrations up to 0005");
    let (done, parked) = (Uuid::now_v7(), Uuid::now_v7());
    for version in 1..=3 {
        append(&db, done, version).await;
    }
    append(&db, parked, 1).await;
    append(&db, parked, 2).await;
    // What a relay of 0005 left behind: two rows published (with where),
    // one parked and one waiting behind it.
    sqlx::query(
        "UPDATE outbox SET published_at = now(), kafka_partition = 4, kafka_offset = 100 + id \
         WHERE aggregate_id = $1 AND aggregate_version <= 2",
    )
    .bind(done)
    .execute(&db.pool)
    .await
    .expect("published");
    sqlx::query(
        "UPDATE outbox SET parked_at = now(), park_reason = 'too large' \
         WHERE aggregate_id = $1 AND aggregate_version = 1",
    )
    .bind(parked)
    .execute(&db.pool)
    .await
    .expect("parked");
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM outbox ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .expect("ids");

    // The envelopes as 0005 stored them (jsonb), as the relay would send them.
    let envelopes = || async {
        sqlx::query_as::<_, (i64, String)>("SELECT id, envelope::text FROM outbox ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .expect("envelopes")
    };
    let before = envelopes().await;

    orderflow_topology::migrate_write(&db.pool)
        .await
        .expect("upgrade");

    assert_eq!(
        published(&db.pool).await,
        vec![
            (ids[0], done, 1, Some(4), Some(100 + ids[0])),
            (ids[1], done, 2, Some(4), Some(100 + ids[1])),
        ]
    );
    let pending: Vec<(i64, Option<String>)> =
        sqlx::query_as("SELECT id, park_reason FROM outbox ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .expect("pending");
    assert_eq!(
        pending,
        vec![
            (ids[2], None),
            (ids[3], Some("too large".into())),
            (ids[4], None)
        ]
    );
    // Migration 0007 stores them as json: the same text, so the same message.
    let still_pending: Vec<(i64, String)> = before
        .into_iter()
        .filter(|(id, _)| ids[2..].contains(id))
        .collect();
    assert_eq!(
        envelopes().await,
        still_pending,
        "the pending rows' envelopes survive the upgrade unchanged"
    );

    let topic = events_topic().await;
    let (token, relay) = start_relay(&db, &topic, &[]);
    eventually(
        "the pending row published",
        Duration::from_secs(60),
        || async {
            let records = published(&db.pool).await;
            (records.len() == 3).then_some(records)
        },
    )
    .await;
    let left: Vec<i64> = sqlx::query_scalar("SELECT id FROM outbox ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .expect("left");
    assert_eq!(left, vec![ids[3], ids[4]], "the parked order still waits");
    let parked_rows = orderflow_outbox::parked(&mut db.pool.acquire().await.expect("conn"))
        .await
        .expect("parked");
    assert_eq!(parked_rows.len(), 1);
    assert_eq!(parked_rows[0].waiting, 1);
    token.cancel();
    relay.await.expect("join").expect("relay");
}
