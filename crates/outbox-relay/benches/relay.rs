//! Relay throughput and latency, next to the raw producer.
//!
//! `cargo bench -p outbox-relay --bench relay` (release; the local stack must
//! be up). In one run:
//!
//! 1. **raw**: the rdkafka producer alone, with the relay's settings, sends
//!    the backlog's envelopes (same keys, same values) with every message in
//!    flight: the ceiling for this machine and broker.
//! 2. **drain**: the relay drains the same backlog (`BENCH_BACKLOG` rows,
//!    default 100,000) from Postgres: read, send, wait for acks, mark.
//! 3. **steady**: events committed one per transaction at `BENCH_RATE`
//!    per second (default 500) for `BENCH_SECS` (default 10) while the relay
//!    runs; commit→published latency from the rows' timestamps.

#![allow(clippy::print_stdout)] // figures are the output

use std::time::{Duration, Instant};

use clap::Parser as _;
use futures::future::join_all;
use orderflow_testkit::bench::percentile;
use orderflow_testkit::{fresh_database, fresh_topic, kafka_brokers, kafka_config};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

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
                i / 10000 + 1, $2
         FROM generate_series(0, $1 - 1) AS i",
    )
    .bind(rows as i64)
    .bind(envelope())
    .execute(pool)
    .await
    .expect("backlog");
}

fn relay_settings(url: &str, topic: &str) -> outbox_relay::Settings {
    outbox_relay::Settings::try_parse_from([
        "outbox-relay",
        "--write-database-url",
        url,
        "--kafka-brokers",
        &kafka_brokers(),
        "--events-topic",
        topic,
        "--ops-addr",
        "127.0.0.1:0",
    ])
    .expect("settings")
}

#[tokio::main]
async fn main() {
    let backlog = env_or("BENCH_BACKLOG", 100_000);
    let rate = env_or("BENCH_RATE", 500);
    let secs = env_or("BENCH_SECS", 10);
    let db = fresh_database("bench_relay").await;
    orderflow_writemodel::MIGRATOR
        .run(&db.pool)
        .await
        .expect("migrate");
    load_backlog(&db.pool, backlog).await;

    // 1. Raw producer over the same keys and values.
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT aggregate_id, envelope::text FROM outbox ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .expect("rows");
    let raw_topic = fresh_topic("bench-raw", 6).await;
    let producer: FutureProducer = outbox_relay::publisher::producer_config(kafka_config())
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
    let raw_rate = rows.len() as f64 / started.elapsed().as_secs_f64();
    drop(rows);

    // 2. The relay drains the backlog.
    let topic = fresh_topic("bench-relay", 6).await;
    let token = CancellationToken::new();
    let started = Instant::now();
    let relay = tokio::spawn(outbox_relay::run(
        relay_settings(&db.url, &topic),
        token.clone(),
    ));
    loop {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&db.pool)
                .await
                .expect("count");
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drain_rate = backlog as f64 / started.elapsed().as_secs_f64();

    // 3. Steady load, one event per transaction, relay already running.
    sqlx::query("DELETE FROM outbox")
        .execute(&db.pool)
        .await
        .expect("clear");
    let total = rate * secs;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut writes = Vec::new();
    for _ in 0..total {
        tick.tick().await;
        let pool = db.pool.clone();
        let mut value = envelope();
        value["aggregate_version"] = serde_json::json!(1);
        writes.push(tokio::spawn(async move {
            let mut tx = pool.begin().await.expect("begin");
            sqlx::query(
                "INSERT INTO outbox (event_id, event_type, schema_version, aggregate_type, aggregate_id, aggregate_version, envelope)
                 VALUES (gen_random_uuid(), 'OrderPlaced', 1, 'order', $1, 1, $2)",
            )
            .bind(Uuid::now_v7())
            .bind(value)
            .execute(&mut *tx)
            .await
            .expect("insert");
            sqlx::query("SELECT pg_notify('outbox', '')").execute(&mut *tx).await.expect("notify");
            tx.commit().await.expect("commit");
        }));
    }
    for w in writes {
        w.await.expect("write");
    }
    loop {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&db.pool)
                .await
                .expect("count");
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut latencies: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM published_at - created_at)::float8 FROM outbox",
    )
    .fetch_all(&db.pool)
    .await
    .expect("latencies");
    latencies.sort_by(f64::total_cmp);
    token.cancel();
    let _ = relay.await;

    println!("outbox relay, {backlog} events of ~1 KB, 6 partitions, lz4, acks=all, idempotent");
    println!("  raw producer          {raw_rate:>10.0} events/s");
    println!(
        "  relay drain           {drain_rate:>10.0} events/s   ({:.2}x of raw)",
        drain_rate / raw_rate
    );
    println!(
        "  steady {rate}/s for {secs}s   commit->published p50 {:.1} ms, p99 {:.1} ms ({} events)",
        percentile(&latencies, 0.50) * 1000.0,
        percentile(&latencies, 0.99) * 1000.0,
        latencies.len()
    );
}
