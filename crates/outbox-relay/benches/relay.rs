//! Relay throughput and latency, next to the raw producer.
//!
//! `cargo bench -p outbox-relay --bench relay` (release; the local stack must
//! be up). In one run, `BENCH_ROUNDS` times (default 2) so the noise of a
//! shared machine shows as a range:
//!
//! 1. **raw**: the rdkafka producer alone, with the relay's settings (its
//!    default linger included), sends the backlog's envelopes (same keys,
//!    same values) with every message in flight: the ceiling for this
//!    machine and broker.
//! 2. **drain, one batch in flight**: the relay drains the same backlog
//!    (`BENCH_BACKLOG` rows, default 100,000) from Postgres with
//!    `RELAY_PIPELINE_DEPTH=1`: read, send, wait for acks, mark, read again
//!    (the relay's shape before the window).
//! 3. **drain, window**: the same with the default depth, so Postgres reads
//!    and marks while earlier batches are on their way to Kafka.
//!
//! Then **steady**: events committed one per transaction at `BENCH_RATE`
//! per second (default 500) for `BENCH_SECS` (default 10) while the relay
//! runs: woken by a `NOTIFY` per commit (1 s poll), with librdkafka's
//! default linger of 5 ms (10 ms poll), and with the relay's defaults.
//! Printed per event: **commit→ack**, from the moment the writer's COMMIT
//! returned (the row is visible from then on) to the relay's
//! `published_at` (when Kafka's delivery report was in), both this host's
//! clock; beside it **txn start→ack** (from the row's `created_at`, the
//! writer's transaction start: the older measure, which also counts the
//! writer's own commit and its WAL flush) and, as the baseline of the same
//! run, the writer's own INSERT+COMMIT latency.

#![allow(clippy::print_stdout)] // figures are the output

use std::time::{Duration, Instant};

use clap::Parser as _;
use futures::future::join_all;
use hdrhistogram::Histogram;
use orderflow_testkit::bench::{histogram, ms, quantile, record};
use orderflow_testkit::{TestDatabase, fresh_database, fresh_topic, kafka_brokers, kafka_config};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::Connection as _;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Topics this run made, deleted at its end (each holds a 100 MB backlog).
static TOPICS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

async fn topic(prefix: &str) -> String {
    let name = fresh_topic(prefix, 6).await;
    TOPICS.lock().expect("topics").push(name.clone());
    name
}

/// Deletes the run's topics and database, so repeated runs do not fill the disk.
async fn clean_up(db: TestDatabase) {
    let topics = std::mem::take(&mut *TOPICS.lock().expect("topics"));
    let admin: AdminClient<DefaultClientContext> = kafka_config().create().expect("admin");
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let _ = admin.delete_topics(&names, &AdminOptions::new()).await;
    db.pool.close().await;
    let mut conn = sqlx::PgConnection::connect(&orderflow_testkit::postgres_admin_url())
        .await
        .expect("admin connection");
    let _ = sqlx::query(&format!(r#"DROP DATABASE "{}" WITH (FORCE)"#, db.name))
        .execute(&mut conn)
        .await;
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// An OrderPlaced-sized envelope (about 1 KB).
fn envelope() -> serde_json::Value {
    serde_json::json!({
        "event_id": Uuid::now_v7(), "event_type": "OrderPlaced", "schema_version": 1,
        "aggregate_type": "order", "aggregate_id": Uuid::now_v7(), "aggregate_version": 1,
        "occurred_at": "2026-11-30T10:00:00Z", "correlation_id": Uuid::now_v7(), "causation_id": Uuid::now_v7(),
        "payload": {
            "order_id": Uuid::now_v7(),
            "customer": {"customer_id": Uuid::now_v7(), "name": "Ada Lovelace", "email": "ada@example.com"},
            "lines": (0..3).map(|i| serde_json::json!({"product_id": Uuid::now_v7(), "sku": format!("SKU-{i}"),
                "product_name": format!("Product {i}"), "unit_price_minor": 1250, "quantity": 2, "line_total_minor": 2500})).collect::<Vec<_>>(),
            "currency": "EUR", "total_minor": 7500,
            "shipping_address": {"line1": "1 Analytical Way", "city": "London", "postal_code": "N1 9GU", "country": "GB"},
            "placed_at": "2026-11-30T10:00:00Z"
        }
    })
}

async fn load_backlog(pool: &PgPool, rows: u64) {
    // 10,000 orders, versions 1.. per order, in id order.
    sqlx::query(
        "INSERT INTO outbox (event_id, event_type, schema_version, aggregate_type, aggregate_id, aggregate_version, envelope)
         SELECT gen_random_uuid(), 'OrderPlaced', 1, 'order',
                ('00000000-0000-7000-8000-' || lpad(to_hex(i % 10000), 12, '0'))::uuid,
                i / 10000 + 1, $2::json
         FROM generate_series(0, $1 - 1) AS i",
    )
    .bind(rows as i64)
    .bind(envelope().to_string())
    .execute(pool)
    .await
    .expect("backlog");
}

fn relay_settings(url: &str, topic: &str, extra: &[&str]) -> outbox_relay::Settings {
    let mut args = vec![
        "outbox-relay",
        "--write-database-url",
        url,
        "--events-topic",
        topic,
        "--ops-addr",
        "127.0.0.1:0",
    ];
    let brokers = kafka_brokers();
    args.extend(["--kafka-brokers", &brokers]);
    args.extend(extra);
    outbox_relay::Settings::try_parse_from(args).expect("settings")
}

/// Waits until every outbox row is published (published rows leave `outbox`).
///
/// Polled by the newest published id, one probe of `outbox_published`'s
/// key: a `count(*)` of the outbox every poll would scan the rows being
/// deleted and take CPU from the relay it measures. The window completes
/// batches in id order, so the backlog's last id is marked last; a count
/// confirms it once.
async fn drained(pool: &PgPool) {
    let last: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM outbox")
        .fetch_one(pool)
        .await
        .expect("last id");
    let Some(last) = last else { return };
    loop {
        let newest: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM outbox_published")
            .fetch_one(pool)
            .await
            .expect("newest published");
        if newest == Some(last) {
            let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
                .fetch_one(pool)
                .await
                .expect("count");
            if left == 0 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The raw producer's rate over the backlog's keys and values.
async fn raw(pool: &PgPool) -> f64 {
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT aggregate_id, envelope::text FROM outbox ORDER BY id")
            .fetch_all(pool)
            .await
            .expect("rows");
    let raw_topic = topic("bench-raw").await;
    let linger = relay_settings("postgres://unused", "unused", &[]).kafka_linger;
    let producer: FutureProducer = outbox_relay::publisher::producer_config(kafka_config(), linger)
        .create()
        .expect("producer");
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(rows.len());
    for (key, value) in &rows {
        let key = key.to_string();
        let mut record = FutureRecord::to(&raw_topic).key(&key).payload(value);
        loop {
            match producer.send_result(record) {
                Ok(d) => {
                    deliveries.push(d);
                    break;
                }
                Err((_, returned)) => {
                    record = returned;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
    for d in join_all(deliveries).await {
        d.expect("delivered").expect("acked");
    }
    rows.len() as f64 / started.elapsed().as_secs_f64()
}

/// The relay's rate draining a fresh backlog of `rows` with `extra` settings.
async fn drain(db: &TestDatabase, rows: u64, extra: &[&str]) -> f64 {
    sqlx::query("TRUNCATE outbox, outbox_published")
        .execute(&db.pool)
        .await
        .expect("clear");
    load_backlog(&db.pool, rows).await;
    sqlx::query("VACUUM ANALYZE outbox")
        .execute(&db.pool)
        .await
        .expect("vacuum");
    let topic = topic("bench-relay").await;
    let token = CancellationToken::new();
    let started = Instant::now();
    let relay = tokio::spawn(outbox_relay::run(
        relay_settings(&db.url, &topic, extra),
        token.clone(),
    ));
    drained(&db.pool).await;
    let rate = rows as f64 / started.elapsed().as_secs_f64();
    token.cancel();
    relay.await.expect("join").expect("relay");
    rate
}

/// Latencies of one steady run.
struct Steady {
    /// The writer's COMMIT returned → Kafka's ack.
    commit_to_ack: Histogram<u64>,
    /// The writer's transaction start (`created_at`) → Kafka's ack.
    start_to_ack: Histogram<u64>,
    /// The writer's INSERT + COMMIT, as it saw it.
    write: Histogram<u64>,
}

/// Latencies of events committed one per transaction at `rate` per second
/// for `secs`, the relay running with `extra` settings; `notify` issues the
/// commands' `NOTIFY outbox`.
async fn steady(db: &TestDatabase, rate: u64, secs: u64, notify: bool, extra: &[&str]) -> Steady {
    sqlx::query("TRUNCATE outbox, outbox_published")
        .execute(&db.pool)
        .await
        .expect("clear");
    let topic = topic("bench-steady").await;
    let token = CancellationToken::new();
    let relay = tokio::spawn(outbox_relay::run(
        relay_settings(&db.url, &topic, extra),
        token.clone(),
    ));
    // The relay is leading once it has read the (empty) outbox.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let total = rate * secs;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut writes = Vec::new();
    for _ in 0..total {
        tick.tick().await;
        let pool = db.pool.clone();
        let value = envelope().to_string();
        writes.push(tokio::spawn(async move {
            let mut tx = pool.begin().await.expect("begin");
            let started = Instant::now();
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO outbox (event_id, event_type, schema_version, aggregate_type, aggregate_id, aggregate_version, envelope)
                 VALUES (gen_random_uuid(), 'OrderPlaced', 1, 'order', $1, 1, $2::json) RETURNING id",
            )
            .bind(Uuid::now_v7())
            .bind(value)
            .fetch_one(&mut *tx)
            .await
            .expect("insert");
            if notify {
                sqlx::query("SELECT pg_notify('outbox', '')")
                    .execute(&mut *tx)
                    .await
                    .expect("notify");
            }
            tx.commit().await.expect("commit");
            (id, time::OffsetDateTime::now_utc(), started.elapsed())
        }));
    }
    let mut committed = Vec::with_capacity(writes.len());
    let mut write = histogram();
    for w in writes {
        let (id, at, took) = w.await.expect("write");
        record(&mut write, took);
        committed.push((id, at));
    }
    drained(&db.pool).await;
    let published: std::collections::HashMap<i64, (time::OffsetDateTime, time::OffsetDateTime)> =
        sqlx::query_as::<_, (i64, time::OffsetDateTime, time::OffsetDateTime)>(
            "SELECT id, created_at, published_at FROM outbox_published",
        )
        .fetch_all(&db.pool)
        .await
        .expect("latencies")
        .into_iter()
        .map(|(id, created, published)| (id, (created, published)))
        .collect();
    token.cancel();
    relay.await.expect("join").expect("relay");
    let (mut commit_to_ack, mut start_to_ack) = (histogram(), histogram());
    let since = |from: time::OffsetDateTime, to: time::OffsetDateTime| {
        Duration::from_secs_f64((to - from).as_seconds_f64().max(0.0))
    };
    for (id, at) in committed {
        let (created, acked) = published[&id];
        record(&mut commit_to_ack, since(at, acked));
        record(&mut start_to_ack, since(created, acked));
    }
    Steady {
        commit_to_ack,
        start_to_ack,
        write,
    }
}

fn range(xs: &[f64]) -> String {
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(0.0, f64::max);
    format!("{lo:.0}–{hi:.0}")
}

#[tokio::main]
async fn main() {
    let backlog = env_or("BENCH_BACKLOG", 100_000);
    let rate = env_or("BENCH_RATE", 500);
    let secs = env_or("BENCH_SECS", 10);
    let rounds = env_or("BENCH_ROUNDS", 2);
    let db = fresh_database("bench_relay").await;
    orderflow_writemodel::MIGRATOR
        .run(&db.pool)
        .await
        .expect("migrate");

    println!("outbox relay, {backlog} events of ~1 KB, 6 partitions, lz4, acks=all, idempotent");
    println!(
        "{:>5} | {:>10} | {:>14} {:>6} | {:>14} {:>6} | {:>7}",
        "round", "raw ev/s", "depth 1 ev/s", "/raw", "window ev/s", "/raw", "speedup"
    );
    let (mut raws, mut olds, mut news) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        sqlx::query("TRUNCATE outbox, outbox_published")
            .execute(&db.pool)
            .await
            .expect("clear");
        load_backlog(&db.pool, backlog).await;
        let raw_rate = raw(&db.pool).await;
        let old = drain(&db, backlog, &["--pipeline-depth", "1"]).await;
        let new = drain(&db, backlog, &[]).await;
        println!(
            "{round:>5} | {raw_rate:>10.0} | {old:>14.0} {:>6.2} | {new:>14.0} {:>6.2} | {:>6.2}x",
            old / raw_rate,
            new / raw_rate,
            new / old
        );
        raws.push(raw_rate);
        olds.push(old);
        news.push(new);
    }
    println!(
        "range | {:>10} | {:>14} {:>6} | {:>14} {:>6} |",
        range(&raws),
        range(&olds),
        "",
        range(&news),
        ""
    );

    // The commands' NOTIFY wakes the relay (its 1 s poll a fallback),
    // against no NOTIFY and a short poll; and the producer's linger at
    // librdkafka's default against the relay's. Each twice, alternating.
    for _ in 0..2 {
        for (notify, extra, label) in [
            (
                true,
                &["--poll-interval", "1s"][..],
                "NOTIFY per commit, 1s poll",
            ),
            (
                false,
                &["--poll-interval", "10ms", "--kafka-linger", "5ms"][..],
                "no NOTIFY, 10ms poll, linger 5ms",
            ),
            (false, &[][..], "the relay's defaults"),
        ] {
            let run = steady(&db, rate, secs, notify, extra).await;
            let p = |h: &Histogram<u64>| {
                format!(
                    "p50 {:.1} ms, p99 {:.1} ms",
                    ms(quantile(h, 0.50)),
                    ms(quantile(h, 0.99))
                )
            };
            println!(
                "steady {rate}/s for {secs}s, {label}: commit->ack {} | txn start->ack {} | writer's insert+commit {} ({} events)",
                p(&run.commit_to_ack),
                p(&run.start_to_ack),
                p(&run.write),
                run.commit_to_ack.len()
            );
        }
    }
    clean_up(db).await;
}
