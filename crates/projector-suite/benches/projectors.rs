//! Projector throughput and visibility latency.
//!
//! `cargo bench -p projector-suite --bench projectors` (release; stack up).
//!
//! 1. **Replay**: `BENCH_EVENTS` (default 200,000) events on a 6-partition
//!    topic; each projector consumes them from the start with a fresh group
//!    and store, once with the inbox and once without (its cost), next to a
//!    raw baseline for its store that writes the same folded state in the
//!    same batch size with no Kafka, inbox or read-back: batched upserts
//!    (Postgres), `_bulk` (OpenSearch), pipelined HSET + PUBLISH (Redis).
//! 2. **Steady**: PlaceOrder at `BENCH_RATE` commands/s (default 500) for
//!    `BENCH_SECS` (default 10) through order-command, the relay and the
//!    three projectors, all in this process; for each read model, the time
//!    from the command's response to the order being visible to a reader
//!    (summary row, search hit after refresh, Redis key), p50/p99.

#![allow(clippy::print_stdout)] // figures are the output

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser as _;
use elasticsearch::http::request::JsonBody;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::{BulkParts, Elasticsearch, SearchParts};
use futures::future::join_all;
use orderflow_contracts::Envelope;
use orderflow_readmodel::{OrderSummary, Step, apply};
use orderflow_testkit::bench::percentile;
use orderflow_testkit::{fresh_database, fresh_topic, kafka_config};
use projector_suite::Backend;
use projector_suite::backends::Env;
use projector_suite::events::{messages, sequence};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use uuid::Uuid;

const BATCH: usize = 500;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn search_client(url: &str) -> Elasticsearch {
    let transport = TransportBuilder::new(SingleNodeConnectionPool::new(url.parse().expect("url")))
        .disable_proxy()
        .build()
        .expect("transport");
    Elasticsearch::new(transport)
}

async fn produce_all(topic: &str, messages: &[(Uuid, Vec<u8>)]) {
    let producer: FutureProducer = kafka_config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    // Enqueued in order (a full queue is waited out in place), so each
    // order's events keep their order on the partition.
    let mut deliveries = Vec::with_capacity(messages.len());
    for (key, value) in messages {
        let key = key.to_string();
        let mut record = FutureRecord::to(topic).key(&key).payload(value);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => break deliveries.push(delivery),
                Err((_, returned)) => {
                    record = returned;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
    for d in join_all(deliveries).await {
        d.expect("delivered").map_err(|(e, _)| e).expect("produced");
    }
}

/// True once `group` has committed the high watermark of every partition.
fn caught_up(group: &str, topic: &str, partitions: i32) -> bool {
    let consumer: BaseConsumer = kafka_config()
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let Ok(committed) = consumer.committed_offsets(list, Duration::from_secs(5)) else {
        return false;
    };
    committed.elements().iter().all(|e| {
        let Ok((_, high)) = consumer.fetch_watermarks(topic, e.partition(), Duration::from_secs(5))
        else {
            return false;
        };
        matches!(e.offset(), Offset::Offset(o) if o >= high) || high == 0
    })
}

async fn replay(backend: Backend, topic: &str, events: usize, inbox: bool) -> f64 {
    let mut env = Env::new("bench").await;
    env.topic = topic.to_owned();
    let started = Instant::now();
    let running = backend.start_with(&env, &["--inbox", if inbox { "true" } else { "false" }]);
    loop {
        let (group, topic) = (env.group.clone(), env.topic.clone());
        if tokio::task::spawn_blocking(move || caught_up(&group, &topic, 6))
            .await
            .expect("check")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rate = events as f64 / started.elapsed().as_secs_f64();
    running.stop().await;
    rate
}

/// Folds chunks of events in memory and hands each chunk's changed
/// summaries to `write`; returns events/s.
async fn raw<F, Fut>(events: &[Envelope], mut write: F) -> f64
where
    F: FnMut(Vec<OrderSummary>, Vec<Envelope>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let decoded: Vec<_> = events
        .iter()
        .map(|e| orderflow_contracts::decode(e).expect("decodes"))
        .collect();
    let mut state: HashMap<Uuid, OrderSummary> = HashMap::new();
    let started = Instant::now();
    for (chunk, decoded) in events.chunks(BATCH).zip(decoded.chunks(BATCH)) {
        let mut changed = HashSet::new();
        for (e, d) in chunk.iter().zip(decoded) {
            if let Step::Applied(next) = apply(
                state.get(&e.aggregate_id),
                e.aggregate_version,
                d,
                e.occurred_at,
            ) {
                changed.insert(next.order_id);
                state.insert(next.order_id, *next);
            }
        }
        let rows = changed.iter().map(|id| state[id].clone()).collect();
        write(rows, chunk.to_vec()).await;
    }
    events.len() as f64 / started.elapsed().as_secs_f64()
}

async fn raw_baseline(backend: Backend, events: &[Envelope]) -> f64 {
    let env = Env::new("bench-raw").await;
    match backend {
        Backend::Summary => {
            let pool = env.db.pool.clone();
            raw(events, |rows, _| {
                let pool = pool.clone();
                async move {
                    sqlx::query(include_str!(
                        "../../orderflow-readstore/src/summary/sql/upsert.sql"
                    ))
                    .bind(sqlx::types::Json(rows))
                    .execute(&pool)
                    .await
                    .expect("upsert");
                }
            })
            .await
        }
        Backend::Search => {
            let client = search_client(&env.search_url);
            let index = env.alias.clone();
            raw(events, |rows, _| {
                let (client, index) = (client.clone(), index.clone());
                async move {
                    let mut body: Vec<JsonBody<Value>> = Vec::new();
                    for s in &rows {
                        body.push(json!({"index": {"_id": s.order_id, "version": s.version, "version_type": "external"}}).into());
                        body.push(serde_json::to_value(s).expect("doc").into());
                    }
                    let r = client.bulk(BulkParts::Index(&index)).body(body).send().await.expect("bulk");
                    assert!(r.status_code().is_success());
                }
            })
            .await
        }
        Backend::Status => {
            let client = redis::Client::open(env.redis_url.as_str()).expect("redis");
            let conn = client
                .get_multiplexed_async_connection()
                .await
                .expect("connection");
            let prefix = env.prefix.clone();
            raw(events, |_, chunk| {
                let (mut conn, prefix) = (conn.clone(), prefix.clone());
                async move {
                    let mut pipe = redis::pipe();
                    for e in &chunk {
                        let status = orderflow_readmodel::status_after(
                            &orderflow_contracts::decode(e).expect("decodes"),
                        );
                        pipe.cmd("HSET")
                            .arg(format!("{prefix}order:{}", e.aggregate_id))
                            .arg("status")
                            .arg(status)
                            .arg("version")
                            .arg(e.aggregate_version)
                            .ignore();
                        pipe.cmd("PUBLISH")
                            .arg(format!("{prefix}status-changes"))
                            .arg(status)
                            .ignore();
                    }
                    let () = pipe.query_async(&mut conn).await.expect("pipeline");
                }
            })
            .await
        }
    }
}

fn percentiles(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    (
        percentile(&samples, 0.5) * 1000.0,
        percentile(&samples, 0.99) * 1000.0,
    )
}

/// The whole pipeline at a steady rate; visibility latency per read model.
async fn steady(rate: u64, secs: u64) -> (f64, Vec<(&'static str, f64, f64, usize)>) {
    let write = fresh_database("bench_write").await;
    orderflow_writemodel::MIGRATOR
        .run(&write.pool)
        .await
        .expect("migrate");
    let mut env = Env::new("bench-steady").await;
    env.topic = orderflow_testkit::unique_name("bench-steady").replace('_', "-");

    let state = order_command::app::AppState {
        pool: write.pool.clone(),
        idempotency_ttl: Duration::from_secs(3600),
        faults: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, order_command::app::router(state)).await });
    let relay_token = tokio_util::sync::CancellationToken::new();
    let relay_settings = outbox_relay::Settings::try_parse_from([
        "outbox-relay",
        "--write-database-url",
        &write.url,
        "--kafka-brokers",
        &env.brokers,
        "--events-topic",
        &env.topic,
        "--ops-addr",
        "127.0.0.1:0",
    ])
    .expect("relay settings");
    tokio::spawn(outbox_relay::run(relay_settings, relay_token.clone()));
    // Let the relay create the topic before the projectors subscribe.
    let http = reqwest::Client::new();
    let customer: Value = http
        .post(format!("{base}/customers"))
        .json(&json!({"name": "Bench", "email": "steady@example.com"}))
        .send()
        .await
        .expect("customer")
        .json()
        .await
        .expect("json");
    let product: Value = http.post(format!("{base}/products"))
        .json(&json!({"sku": "STEADY-1", "name": "Steady product", "unit_price_minor": 999, "currency": "EUR", "stock": 1_000_000_000}))
        .send().await.expect("product").json().await.expect("json");
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Each projector is its own consumer group, as in production.
    let projectors: Vec<_> = Backend::all()
        .into_iter()
        .map(|b| {
            let mut own = env.clone();
            own.group = orderflow_testkit::unique_name(&format!("{b:?}").to_lowercase());
            b.start(&own)
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;

    let committed: Arc<Mutex<HashMap<Uuid, Instant>>> = Arc::default();
    let sends_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The poller runs beside the load from the first command on, so each
    // order's latency is measured from its own response.
    let poller = {
        let (committed, sends_done, env) = (committed.clone(), sends_done.clone(), env.clone());
        tokio::spawn(async move { poll_visibility(committed, sends_done, env).await })
    };
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    let body = json!({"customer_id": customer["id"], "lines": [{"product_id": product["id"], "quantity": 1}],
        "shipping_address": {"line1": "1 Steady Rd", "city": "Hull", "postal_code": "HU1", "country": "GB"}});
    let mut sends = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        let (http, base, body, committed) =
            (http.clone(), base.clone(), body.clone(), committed.clone());
        sends.push(tokio::spawn(async move {
            let reply: Value = http
                .post(format!("{base}/orders"))
                .json(&body)
                .send()
                .await
                .expect("order")
                .json()
                .await
                .expect("json");
            let id = Uuid::parse_str(reply["order_id"].as_str().expect("order id")).expect("uuid");
            committed.lock().await.insert(id, Instant::now());
        }));
    }
    join_all(sends).await;
    let total = committed.lock().await.len();
    let achieved = total as f64 / secs as f64;
    sends_done.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut seen = poller.await.expect("poller");
    let (unpublished, rows): (i64, i64) =
        sqlx::query_as("SELECT count(*) FILTER (WHERE published_at IS NULL), count(*) FROM outbox")
            .fetch_one(&write.pool)
            .await
            .expect("outbox");
    println!("  (outbox after the run: {rows} rows, {unpublished} unpublished)");
    for p in projectors {
        p.stop().await;
    }
    relay_token.cancel();
    let rows = ["summary", "search", "status"]
        .into_iter()
        .map(|store| {
            let samples: Vec<f64> = seen
                .remove(store)
                .unwrap_or_default()
                .into_values()
                .collect();
            let n = samples.len();
            let (p50, p99) = if n > 0 {
                percentiles(samples)
            } else {
                (f64::NAN, f64::NAN)
            };
            (store, p50, p99, n)
        })
        .collect();
    (achieved, rows)
}

/// Polls the three stores every 50 ms, each only for committed orders it
/// does not show yet; returns, per store, each order's command→visible
/// seconds once every order is visible everywhere (or after 120 s).
async fn poll_visibility(
    committed: Arc<Mutex<HashMap<Uuid, Instant>>>,
    sends_done: Arc<std::sync::atomic::AtomicBool>,
    env: Env,
) -> HashMap<&'static str, HashMap<Uuid, f64>> {
    let search = search_client(&env.search_url);
    let redis = redis::Client::open(env.redis_url.as_str()).expect("redis");
    let mut conn = redis
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let mut seen: HashMap<&'static str, HashMap<Uuid, f64>> = HashMap::new();
    let mut deadline: Option<Instant> = None;
    loop {
        let pending: HashMap<Uuid, Instant> = committed.lock().await.clone();
        let now = Instant::now();
        let missing =
            |store: &str, seen: &HashMap<&'static str, HashMap<Uuid, f64>>| -> Vec<Uuid> {
                pending
                    .keys()
                    .filter(|id| !seen.get(store).is_some_and(|s| s.contains_key(*id)))
                    .copied()
                    .collect()
            };
        let ids = missing("summary", &seen);
        if !ids.is_empty() {
            let visible: Vec<Uuid> =
                sqlx::query_scalar("SELECT order_id FROM order_summary WHERE order_id = ANY($1)")
                    .bind(&ids)
                    .fetch_all(&env.db.pool)
                    .await
                    .expect("summary");
            for id in visible {
                seen.entry("summary")
                    .or_default()
                    .insert(id, (now - pending[&id]).as_secs_f64());
            }
        }
        let ids = missing("search", &seen);
        if !ids.is_empty()
            && let Ok(response) = search
                .search(SearchParts::Index(&[&env.alias]))
                .body(json!({"size": 10000, "_source": false, "query": {"ids": {"values": ids}}}))
                .send()
                .await
        {
            let hits: Value = response.json().await.unwrap_or_default();
            for h in hits["hits"]["hits"].as_array().into_iter().flatten() {
                if let Some(id) = h["_id"].as_str().and_then(|s| Uuid::parse_str(s).ok()) {
                    seen.entry("search")
                        .or_default()
                        .insert(id, (now - pending[&id]).as_secs_f64());
                }
            }
        }
        let ids = missing("status", &seen);
        if !ids.is_empty() {
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.cmd("EXISTS").arg(format!("{}order:{id}", env.prefix));
            }
            let exists: Vec<i64> = pipe.query_async(&mut conn).await.expect("exists");
            for (id, e) in ids.iter().zip(exists) {
                if e == 1 {
                    seen.entry("status")
                        .or_default()
                        .insert(*id, (now - pending[id]).as_secs_f64());
                }
            }
        }
        if sends_done.load(std::sync::atomic::Ordering::SeqCst) {
            let total = committed.lock().await.len();
            if ["summary", "search", "status"]
                .iter()
                .all(|s| seen.get(s).map_or(0, HashMap::len) == total)
            {
                return seen;
            }
            let limit = *deadline.get_or_insert_with(|| Instant::now() + Duration::from_secs(120));
            if Instant::now() > limit {
                return seen;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::main]
async fn main() {
    let target = env_or("BENCH_EVENTS", 200_000) as usize;
    let rate = env_or("BENCH_RATE", 500);
    let secs = env_or("BENCH_SECS", 10);
    let mut orders = (target / 2) as u32;
    let mut events = sequence(orders);
    while events.len() > target && orders > 1 {
        orders = orders * 9 / 10;
        events = sequence(orders);
    }
    let skip_replay = std::env::var_os("BENCH_SKIP_REPLAY").is_some();
    let topic = fresh_topic("bench-replay", 6).await;
    if !skip_replay {
        produce_all(&topic, &messages(&events)).await;
    }

    println!(
        "projector replay: {} events over {orders} orders, 6 partitions, batches of {BATCH}",
        events.len()
    );
    println!(
        "{:>9} | {:>12} {:>12} {:>12} | {:>11} {:>11}",
        "projector", "raw store/s", "with inbox/s", "no inbox/s", "vs raw", "inbox cost"
    );
    for backend in Backend::all().into_iter().filter(|_| !skip_replay) {
        let raw = raw_baseline(backend, &events).await;
        // Without the inbox first, so a warm cache never favours the inbox run.
        let without = replay(backend, &topic, events.len(), false).await;
        let with_inbox = replay(backend, &topic, events.len(), true).await;
        println!(
            "{:>9} | {raw:>12.0} {with_inbox:>12.0} {without:>12.0} | {:>10.2}x {:>10.0}%",
            format!("{backend:?}").to_lowercase(),
            with_inbox / raw,
            (1.0 - with_inbox / without) * 100.0
        );
    }
    let (achieved, rows) = steady(rate, secs).await;
    println!(
        "steady {rate} PlaceOrder/s offered for {secs}s ({achieved:.0}/s achieved), command response -> visible to a reader:"
    );
    for (store, p50, p99, n) in rows {
        println!("  {store:>8}: p50 {p50:>7.1} ms  p99 {p99:>7.1} ms  ({n} orders)");
    }
}
