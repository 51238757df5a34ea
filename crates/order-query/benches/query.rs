//! Reads over the read models against the same reads joined from the write
//! model (level 0), on at least a million orders.
//!
//! `cargo bench -p order-query --bench query` (the stack must be up:
//! `scripts/stack up`). The first run seeds the dataset with `orderctl seed`
//! and backfills summary, index and cache (minutes); later runs reuse it:
//! databases `bench_query_write` / `bench_query_read`, search alias
//! `bench_query_orders`, Redis prefix `bench-query:`. Remove them with
//! `BENCH_RESEED=1` (reseeds) or drop them by hand.
//!
//! In one run, at concurrency `BENCH_CONCURRENCY` (32), each for
//! `BENCH_SECS` (15) after a short warm-up: `GET /orders/{id}` (random ids)
//! against `GET /level0/orders/{id}`; the dashboard page `GET /orders?limit=50`
//! against `GET /level0/orders?limit=50`; then `GET /orders/search` with
//! names, products, SKUs and tracking numbers, at 32 and alone. Both sides
//! run through the same in-process query service, HTTP client and Postgres
//! server, so the ratio is what the read model saves, not what a second
//! server adds. The load generator shares this 2-core machine with
//! everything it measures: read the ratios, not the absolute figures.
//!
//! `BENCH_ORDERS` (1,000,000) and `BENCH_LINES` (5 per order) size the
//! dataset.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser as _;
use orderflow_ops::backfill::{Targets, backfill};
use orderflow_ops::seed::{SeedPlan, seed};
use orderflow_testkit::bench::{Stats, ms, stats};
use orderflow_testkit::{postgres_admin_url, redis_client, search_client, search_url};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection as _, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const WRITE_DB: &str = "bench_query_write";
const READ_DB: &str = "bench_query_read";
const ALIAS: &str = "bench_query_orders";
const PREFIX: &str = "bench-query:";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn db_url(name: &str) -> String {
    let admin = postgres_admin_url();
    let (base, query) = admin.split_once('?').unwrap_or((&admin, ""));
    let base = base.rsplit_once('/').map_or(base, |(head, _)| head);
    if query.is_empty() {
        format!("{base}/{name}")
    } else {
        format!("{base}/{name}?{query}")
    }
}

async fn pool(name: &str) -> PgPool {
    let options: PgConnectOptions = db_url(name).parse().unwrap();
    PgPoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("connecting to {name}: {e} (is `scripts/stack up` running?)"))
}

async fn admin() -> sqlx::PgConnection {
    sqlx::PgConnection::connect(&postgres_admin_url())
        .await
        .unwrap_or_else(|e| panic!("Postgres: {e} (start it with `scripts/stack up`)"))
}

async fn count_documents() -> u64 {
    let client = search_client().await;
    let response = client
        .count(elasticsearch::CountParts::Index(&[ALIAS]))
        .send()
        .await
        .unwrap();
    if !response.status_code().is_success() {
        return 0;
    }
    let body: Value = response.json().await.unwrap();
    body["count"].as_u64().unwrap_or(0)
}

/// Drops every store of the dataset.
async fn drop_dataset() {
    let mut admin = admin().await;
    for db in [WRITE_DB, READ_DB] {
        sqlx::query(&format!(r#"DROP DATABASE IF EXISTS "{db}" WITH (FORCE)"#))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    let search = search_client().await;
    let _ = search
        .indices()
        .delete(elasticsearch::indices::IndicesDeleteParts::Index(&[
            &format!("{ALIAS}_v*"),
        ]))
        .send()
        .await;
    let mut redis = redis_client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut cursor = 0_u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{PREFIX}*"))
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut redis)
            .await
            .unwrap();
        if !keys.is_empty() {
            let () = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut redis)
                .await
                .unwrap();
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
}

/// Makes sure the dataset holds `orders` orders in all four stores.
async fn ensure_dataset(orders: i64, lines: i32) -> (PgPool, PgPool) {
    let reseed = std::env::var("BENCH_RESEED").is_ok_and(|v| v == "1");
    let existing: Option<i64> = {
        let mut admin = admin().await;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(WRITE_DB)
                .fetch_one(&mut admin)
                .await
                .unwrap();
        if exists {
            let write = pool(WRITE_DB).await;
            sqlx::query_scalar("SELECT count(*) FROM orders")
                .fetch_one(&write)
                .await
                .ok()
        } else {
            None
        }
    };
    let seeded = existing.is_some_and(|n| n >= orders);
    if reseed || !seeded {
        println!("dataset: seeding {orders} orders (existing: {existing:?})");
        drop_dataset().await;
        let mut admin = admin().await;
        for db in [WRITE_DB, READ_DB] {
            sqlx::query(&format!(r#"CREATE DATABASE "{db}""#))
                .execute(&mut admin)
                .await
                .unwrap();
        }
    }
    let write = pool(WRITE_DB).await;
    let read = pool(READ_DB).await;
    orderflow_writemodel::MIGRATOR.run(&write).await.unwrap();
    orderflow_projector::MIGRATOR.run(&read).await.unwrap();
    if reseed || !seeded {
        let report = seed(
            &write,
            &SeedPlan {
                orders,
                lines_per_order: lines,
                customers: None,
                products: 10_000,
                days: 365,
                chunk: 25_000,
                jobs: 2,
                tag: Some("bench".into()),
            },
        )
        .await
        .unwrap();
        println!(
            "seed: {} orders, {} lines, {} customers, {} products in {:.1} s ({:.0} orders/s)",
            report.orders,
            report.lines,
            report.customers,
            report.products,
            report.elapsed.as_secs_f64(),
            report.orders as f64 / report.elapsed.as_secs_f64()
        );
    }

    let write_count: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&write)
        .await
        .unwrap();
    let summary_count: i64 = sqlx::query_scalar("SELECT count(*) FROM order_summary")
        .fetch_one(&read)
        .await
        .unwrap();
    let documents = count_documents().await;
    let mut redis = redis_client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let newest: Uuid = sqlx::query_scalar("SELECT id FROM orders ORDER BY id DESC LIMIT 1")
        .fetch_one(&write)
        .await
        .unwrap();
    let cached: bool = redis::cmd("EXISTS")
        .arg(format!("{PREFIX}order:{newest}"))
        .query_async(&mut redis)
        .await
        .unwrap();
    if summary_count != write_count || documents != write_count as u64 || !cached {
        println!(
            "dataset: backfilling (write {write_count}, summary {summary_count}, search {documents}, cache has newest: {cached})"
        );
        let search = search_client().await;
        orderflow_readstore::search::index::ensure(&search, ALIAS)
            .await
            .unwrap();
        let targets = Targets {
            summary: Some(read.clone()),
            search: Some(orderflow_readstore::search::SearchProjection {
                client: search,
                alias: ALIAS.into(),
            }),
            status: Some(orderflow_readstore::status::StatusProjection::new(
                redis_client(),
                PREFIX.into(),
            )),
        };
        let report = backfill(&write, &targets, None, 1000, &CancellationToken::new())
            .await
            .unwrap();
        assert!(report.complete);
        println!(
            "backfill: {} orders in {:.1} s ({:.0} orders/s): {} summaries, {} documents, {} cache keys written",
            report.orders,
            report.elapsed.as_secs_f64(),
            report.orders as f64 / report.elapsed.as_secs_f64(),
            report.summary,
            report.search,
            report.status
        );
        // Searchable before the first search.
        search_client()
            .await
            .indices()
            .refresh(elasticsearch::indices::IndicesRefreshParts::Index(&[ALIAS]))
            .send()
            .await
            .unwrap();
    }
    sqlx::raw_sql("VACUUM ANALYZE order_summary")
        .execute(&read)
        .await
        .unwrap();
    println!(
        "dataset: {write_count} orders, {} lines",
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM order_lines")
            .fetch_one(&write)
            .await
            .unwrap()
    );
    (write, read)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// Starts the query service over the dataset, level-0 endpoints on.
async fn start_query(token: &CancellationToken) -> String {
    let port = free_port();
    let settings = order_query::Settings::try_parse_from([
        "order-query",
        "--http-addr",
        &format!("127.0.0.1:{port}"),
        "--read-database-url",
        &db_url(READ_DB),
        "--write-database-url",
        &db_url(WRITE_DB),
        "--read-db-max-connections",
        "32",
        "--write-db-max-connections",
        "32",
        "--redis-key-prefix",
        PREFIX,
        "--search-url",
        &search_url(),
        "--search-alias",
        ALIAS,
        "--level0",
        "true",
        // The benchmark measures the reads, not the tokens.
        "--auth-disabled",
        "true",
    ])
    .unwrap();
    tokio::spawn(order_query::run(settings, token.clone()));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    orderflow_testkit::eventually("the query service", Duration::from_secs(60), || {
        let url = format!("{base}/readyz");
        let http = http.clone();
        async move {
            let r = http.get(url).send().await.ok()?;
            r.status().is_success().then_some(())
        }
    })
    .await;
    base
}

/// Runs `workers` loops of `path(i)` GETs for `secs` (after a warm-up of
/// `warmup`); every answer must be 200.
async fn drive(
    http: &reqwest::Client,
    base: &str,
    workers: usize,
    warmup: Duration,
    secs: Duration,
    path: Arc<dyn Fn(u64) -> String + Send + Sync>,
) -> Stats {
    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let measure_from = started + warmup;
    let end = measure_from + secs;
    let mut tasks = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (http, base, path, next, failures) = (
            http.clone(),
            base.to_owned(),
            path.clone(),
            next.clone(),
            failures.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let begun = Instant::now();
                if begun >= end {
                    break;
                }
                let url = format!("{base}{}", path(next.fetch_add(1, Ordering::Relaxed)));
                let ok = match http.get(&url).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                if begun >= measure_from {
                    latencies.push(begun.elapsed());
                }
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let failed = failures.load(Ordering::Relaxed);
    assert_eq!(failed, 0, "{failed} requests failed");
    stats(all, secs)
}

fn row(name: &str, s: &Stats) {
    println!(
        "{name:<34} {:>9.0} {:>9.2} {:>9.2} {:>9}",
        s.per_sec,
        ms(s.p50),
        ms(s.p99),
        s.count
    );
}

fn ratio(name: &str, read: &Stats, level0: &Stats) {
    println!(
        "  -> {name}: {:.2}x the requests/s of level 0; p50 {:.2}x, p99 {:.2}x lower",
        read.per_sec / level0.per_sec,
        level0.p50.as_secs_f64() / read.p50.as_secs_f64(),
        level0.p99.as_secs_f64() / read.p99.as_secs_f64()
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    let orders = env_num("BENCH_ORDERS", 1_000_000) as i64;
    let lines = env_num("BENCH_LINES", 5) as i32;
    let workers = env_num("BENCH_CONCURRENCY", 32) as usize;
    let secs = Duration::from_secs(env_num("BENCH_SECS", 15));
    let warmup = Duration::from_secs(3);

    let (write, _read) = ensure_dataset(orders, lines).await;
    let token = CancellationToken::new();
    let base = start_query(&token).await;

    // Random existing orders, the same list for both sides.
    let ids: Arc<Vec<Uuid>> = Arc::new(
        sqlx::query_scalar("SELECT id FROM orders TABLESAMPLE SYSTEM (2) LIMIT 20000")
            .fetch_all(&write)
            .await
            .unwrap(),
    );
    assert!(!ids.is_empty(), "no orders sampled");
    let terms: Arc<Vec<String>> = Arc::new(search_terms(&write).await);

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(workers)
        .build()
        .unwrap();
    println!(
        "\nconcurrency {workers}, {} s per run after {} s warm-up; {} sampled ids, {} search terms",
        secs.as_secs(),
        warmup.as_secs(),
        ids.len(),
        terms.len()
    );
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>9}",
        "endpoint", "req/s", "p50 ms", "p99 ms", "requests"
    );

    let by_id = |prefix: &'static str| -> Arc<dyn Fn(u64) -> String + Send + Sync> {
        let ids = ids.clone();
        Arc::new(move |i| {
            let id = ids[(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % ids.len() as u64) as usize];
            format!("{prefix}/orders/{id}")
        })
    };
    let read_one = drive(&http, &base, workers, warmup, secs, by_id("")).await;
    row("GET /orders/{id}", &read_one);
    let level0_one = drive(&http, &base, workers, warmup, secs, by_id("/level0")).await;
    row("GET /level0/orders/{id}", &level0_one);

    let page = |path: &'static str| -> Arc<dyn Fn(u64) -> String + Send + Sync> {
        Arc::new(move |_| path.to_owned())
    };
    let read_page = drive(
        &http,
        &base,
        workers,
        warmup,
        secs,
        page("/orders?limit=50"),
    )
    .await;
    row("GET /orders?limit=50", &read_page);
    let level0_page = drive(
        &http,
        &base,
        workers,
        warmup,
        secs,
        page("/level0/orders?limit=50"),
    )
    .await;
    row("GET /level0/orders?limit=50", &level0_page);

    let search = {
        let terms = terms.clone();
        Arc::new(move |i: u64| {
            let term =
                &terms[(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % terms.len() as u64) as usize];
            let q: String = form_urlencoded::byte_serialize(term.as_bytes()).collect();
            format!("/orders/search?q={q}&limit=20")
        }) as Arc<dyn Fn(u64) -> String + Send + Sync>
    };
    let searched = drive(&http, &base, workers, warmup, secs, search.clone()).await;
    row("GET /orders/search?q=…", &searched);
    // One client: the engine's own latency, without 32 requests queueing.
    let alone = drive(&http, &base, 1, warmup, secs, search).await;
    row("GET /orders/search?q=… (c=1)", &alone);

    println!();
    ratio("order by id", &read_one, &level0_one);
    ratio("dashboard, 50 newest", &read_page, &level0_page);
    println!(
        "  -> search: p50 {:.2} ms, p99 {:.2} ms at {:.0} req/s (c={workers}); p99 {:.2} ms alone",
        ms(searched.p50),
        ms(searched.p99),
        searched.per_sec,
        ms(alone.p99)
    );
    token.cancel();
}

/// What people type: customer names, product words, SKUs, tracking numbers.
async fn search_terms(write: &PgPool) -> Vec<String> {
    let mut terms: Vec<String> = sqlx::query_scalar(
        "(SELECT split_part(name, ' ', 2) FROM customers TABLESAMPLE SYSTEM (5) LIMIT 200)
         UNION ALL (SELECT name FROM customers TABLESAMPLE SYSTEM (5) LIMIT 200)
         UNION ALL (SELECT split_part(name, ' ', 2) FROM products LIMIT 200)
         UNION ALL (SELECT sku FROM products TABLESAMPLE SYSTEM (10) LIMIT 200)
         UNION ALL (SELECT tracking_number FROM shipments TABLESAMPLE SYSTEM (1) LIMIT 200)",
    )
    .fetch_all(write)
    .await
    .unwrap();
    terms.retain(|t| !t.is_empty());
    terms
}
