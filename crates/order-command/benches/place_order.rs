//! PlaceOrder throughput and latency, next to a raw-SQL baseline.
//!
//! `cargo bench -p order-command --bench place_order` (release build; the
//! local stack must be up). For concurrency 1, 8 and 32 it runs, for
//! `BENCH_SECS` seconds each (default 5):
//!
//! - **api**: `POST /orders` (3 lines) through HTTP, extractors, validation,
//!   the domain and the transaction, against the service running in this
//!   process on loopback;
//! - **raw**: the same SQL (PlaceOrder's read and its one writing
//!   statement: same locks, same outbox row) issued directly with sqlx: no
//!   HTTP, no JSON parsing, no domain logic.
//!
//! The ratio raw/api is what the service layers cost. Both run in one
//! invocation on the same database, so the machine's noise hits both.

#![allow(clippy::print_stdout)] // figures are the output

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use order_command::app::{AppState, router};
use orderflow_testkit::bench::{Stats, stats};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

const PRODUCTS: usize = 200;
const LINES: usize = 3;

/// A tiny deterministic generator: which products each order takes.
fn pick(seed: &AtomicU64) -> [usize; LINES] {
    let mut x = seed.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) | 1;
    let mut out = [0; LINES];
    let mut i = 0;
    while i < LINES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let p = (x % PRODUCTS as u64) as usize;
        if !out[..i].contains(&p) {
            out[i] = p;
            i += 1;
        }
    }
    out
}

/// Runs `op` from `workers` tasks until `secs` have passed.
async fn drive<F, Fut>(workers: usize, secs: Duration, op: F) -> Stats
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let started = Instant::now();
    let deadline = started + secs;
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    op().await;
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("worker"));
    }
    stats(all, started.elapsed())
}

struct Fixture {
    pool: PgPool,
    customer: Uuid,
    products: Vec<Uuid>,
    base: String,
    http: reqwest::Client,
    envelope: Value,
}

async fn fixture() -> Fixture {
    let db = orderflow_testkit::fresh_database("bench_cmd").await;
    orderflow_writemodel::MIGRATOR
        .run(&db.pool)
        .await
        .expect("migrate");
    let state = AppState {
        pool: db.pool.clone(),
        idempotency_ttl: Duration::from_secs(3600),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    let http = reqwest::Client::new();

    let customer: Value = http
        .post(format!("{base}/customers"))
        .json(&json!({"name": "Bench Customer", "email": "bench@example.com"}))
        .send()
        .await
        .expect("customer")
        .json()
        .await
        .expect("json");
    let customer = Uuid::parse_str(customer["id"].as_str().expect("id")).expect("uuid");
    let mut products = Vec::new();
    for i in 0..PRODUCTS {
        let p: Value = http
            .post(format!("{base}/products"))
            .json(
                &json!({"sku": format!("BENCH-{i}"), "name": format!("Bench product {i}"),
                          "unit_price_minor": 100 + i, "currency": "EUR", "stock": 1_000_000_000}),
            )
            .send()
            .await
            .expect("product")
            .json()
            .await
            .expect("json");
        products.push(Uuid::parse_str(p["id"].as_str().expect("id")).expect("uuid"));
    }
    // One real order gives the baseline a realistic envelope to write.
    let placed: Value = http
        .post(format!("{base}/orders"))
        .json(&order_body(customer, &products, [0, 1, 2]))
        .send()
        .await
        .expect("order")
        .json()
        .await
        .expect("json");
    let envelope: Value = sqlx::query_scalar("SELECT envelope FROM outbox WHERE aggregate_id = $1")
        .bind(Uuid::parse_str(placed["order_id"].as_str().expect("id")).expect("uuid"))
        .fetch_one(&db.pool)
        .await
        .expect("envelope");
    Fixture {
        pool: db.pool,
        customer,
        products,
        base,
        http,
        envelope,
    }
}

fn order_body(customer: Uuid, products: &[Uuid], pick: [usize; LINES]) -> Value {
    json!({
        "customer_id": customer,
        "lines": pick.iter().map(|&p| json!({"product_id": products[p], "quantity": 1})).collect::<Vec<_>>(),
        "shipping_address": {"line1": "1 Bench Street", "city": "Leeds", "postal_code": "LS1 1AA", "country": "GB"}
    })
}

/// The SQL of one PlaceOrder, statement for statement (its read, then its
/// one writing statement), without the service.
async fn raw_place(f: &Fixture, pick: [usize; LINES]) {
    let mut ids: Vec<Uuid> = pick.iter().map(|&p| f.products[p]).collect();
    ids.sort_unstable();
    let order = Uuid::now_v7();
    let mut conn = f.pool.acquire().await.expect("connection");
    let rows: Vec<RawRead> = sqlx::query_as(include_str!("../src/sql/place_read.sql"))
        .bind(f.customer)
        .bind(&ids)
        .bind(None::<&str>)
        .bind(None::<&str>)
        .fetch_all(&mut *conn)
        .await
        .expect("read");
    let n = rows.len();
    let event = Uuid::now_v7();
    let mut envelope = f.envelope.clone();
    envelope["event_id"] = json!(event);
    envelope["aggregate_id"] = json!(order);
    let claimed: bool = sqlx::query_scalar(include_str!("../src/sql/place_write.sql"))
        .bind(None::<&str>)
        .bind(None::<&str>)
        .bind(None::<&[u8]>)
        .bind(None::<f64>)
        .bind(201_i16)
        .bind(br#"{"order_id":"-","version":1,"status":"placed"}"#.as_slice())
        .bind(format!("/orders/{order}"))
        .bind("\"1\"")
        .bind(order)
        .bind(f.customer)
        .bind(&rows[0].customer_name)
        .bind(&rows[0].customer_email)
        .bind("placed")
        .bind(1_i64)
        .bind("EUR")
        .bind(rows.iter().map(|r| r.unit_price_minor).sum::<i64>())
        .bind(json!({"line1": "1 Bench Street", "city": "Leeds", "postal_code": "LS1 1AA", "country": "GB"}))
        .bind(time::OffsetDateTime::now_utc())
        .bind(None::<&str>)
        .bind((1..=n as i32).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.sku.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.unit_price_minor).collect::<Vec<_>>())
        .bind(vec![1_i32; n])
        .bind(rows.iter().map(|r| r.unit_price_minor).collect::<Vec<_>>())
        .bind(vec![event])
        .bind(vec!["OrderPlaced"])
        .bind(vec![1_i32])
        .bind(vec!["order"])
        .bind(vec![order])
        .bind(vec![1_i64])
        .bind(vec![envelope])
        .bind(None::<String>)
        .fetch_one(&mut *conn)
        .await
        .expect("write");
    assert!(claimed);
}

/// The columns of PlaceOrder's read that the write needs.
#[derive(sqlx::FromRow)]
struct RawRead {
    customer_name: String,
    customer_email: String,
    id: Uuid,
    sku: String,
    name: String,
    unit_price_minor: i64,
}

async fn api_place(f: &Fixture, pick: [usize; LINES]) {
    let response = f
        .http
        .post(format!("{}/orders", f.base))
        .json(&order_body(f.customer, &f.products, pick))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let secs = Duration::from_secs(
        std::env::var("BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    );
    let fixture = Arc::new(fixture().await);
    let seed = Arc::new(AtomicU64::new(42));

    println!("PlaceOrder, {LINES} lines per order, {secs:?} per run, pool of 16 connections");
    println!(
        "{:>5} | {:>10} {:>10} {:>10} | {:>10} {:>10} {:>10} | {:>9}",
        "conc", "raw/s", "raw p50", "raw p99", "api/s", "api p50", "api p99", "api/raw"
    );
    for workers in [1, 8, 32] {
        let (f, s) = (fixture.clone(), seed.clone());
        // Short warm-up of both paths, not measured.
        drive(workers, Duration::from_millis(500), move || {
            let (f, s) = (f.clone(), s.clone());
            async move { raw_place(&f, pick(&s)).await }
        })
        .await;
        let (f, s) = (fixture.clone(), seed.clone());
        let raw = drive(workers, secs, move || {
            let (f, s) = (f.clone(), s.clone());
            async move { raw_place(&f, pick(&s)).await }
        })
        .await;
        let (f, s) = (fixture.clone(), seed.clone());
        drive(workers, Duration::from_millis(500), move || {
            let (f, s) = (f.clone(), s.clone());
            async move { api_place(&f, pick(&s)).await }
        })
        .await;
        let (f, s) = (fixture.clone(), seed.clone());
        let api = drive(workers, secs, move || {
            let (f, s) = (f.clone(), s.clone());
            async move { api_place(&f, pick(&s)).await }
        })
        .await;
        println!(
            "{workers:>5} | {:>10.0} {:>10} {:>10} | {:>10.0} {:>10} {:>10} | {:>8.2}x",
            raw.per_sec,
            ms(raw.p50),
            ms(raw.p99),
            api.per_sec,
            ms(api.p50),
            ms(api.p99),
            api.per_sec / raw.per_sec
        );
    }
}
