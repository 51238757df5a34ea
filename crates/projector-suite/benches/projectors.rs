//! Projector throughput: each projector replaying a topic, beside its store's
//! raw bulk rate. (Visibility latency under load is the pipeline bench's,
//! `cargo bench -p system-tests --bench pipeline`, on the real processes.)
//!
//! `cargo bench -p projector-suite --bench projectors` (release; stack up).
//!
//! 1. **Replay**: `BENCH_EVENTS` (default 200,000) events on a 6-partition
//!    topic; each projector consumes them from the start with a fresh group
//!    and store, once with the inbox and once without (its cost), next to a
//!    raw baseline for its store that writes the same folded state in the
//!    same batch size with no Kafka, inbox or read-back: batched upserts
//!    (Postgres), `_bulk` (OpenSearch), pipelined HSET + PUBLISH (Redis).

#![allow(clippy::print_stdout)] // figures are the output

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use elasticsearch::http::request::JsonBody;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::{BulkParts, Elasticsearch};
use orderflow_contracts::Envelope;
use orderflow_readmodel::{OrderSummary, Step, apply};
use orderflow_testkit::{fresh_topic, kafka_config};
use projector_suite::Backend;
use projector_suite::backends::Env;
use projector_suite::events::{messages, sequence};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};
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

#[tokio::main]
async fn main() {
    let target = env_or("BENCH_EVENTS", 200_000) as usize;
    let mut orders = (target / 2) as u32;
    let mut events = sequence(orders);
    while events.len() > target && orders > 1 {
        orders = orders * 9 / 10;
        events = sequence(orders);
    }
    let topic = fresh_topic("bench-replay", 6).await;
    projector_suite::produce_bulk(&topic, &messages(&events)).await;

    println!(
        "projector replay: {} events over {orders} orders, 6 partitions, batches of {BATCH}",
        events.len()
    );
    println!(
        "{:>9} | {:>12} {:>12} {:>12} | {:>11} {:>11}",
        "projector", "raw store/s", "with inbox/s", "no inbox/s", "vs raw", "inbox cost"
    );
    for backend in Backend::all() {
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
}
