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
//!    same batch size (`BENCH_BATCH`, default 500) with no Kafka, inbox or
//!    read-back: batched upserts (Postgres), `_bulk` (OpenSearch), pipelined
//!    HSET + PUBLISH (Redis). `BENCH_PROJECTORS` (a comma-separated list of
//!    `summary`, `search`, `status`; default all) picks the projectors.
//! 2. **Profile**: for each replay, the projector's own
//!    `projector_batch_stage_seconds` from its `/metrics` at the end: mean
//!    milliseconds a batch and share of the run for each stage (waiting for
//!    and filling the batch, decoding, the inbox check, the store's read,
//!    inbox insert, write and commit, settling, held retries, the offset
//!    commit), and the batch size actually reached. The status and search
//!    projectors insert their inbox rows beside the store's write, so their
//!    `inbox_record` is what is left after the write: the rest of the
//!    insert and its commit. The next batch is read ahead while one is
//!    applied, so waiting, filling, decoding and the inbox check overlap
//!    `apply` and the shares can add up past 100 %; `ahead_wait` is how
//!    long an applied batch then waited for the next.

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

/// The batch size of the projectors (`--batch-size`) and of the raw
/// baselines alike: `BENCH_BATCH`, default 500.
fn batch() -> usize {
    env_or("BENCH_BATCH", 500) as usize
}

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

/// Events `group` has committed over every partition, and whether that is
/// the high watermark of each.
fn committed(group: &str, topic: &str, partitions: i32) -> (u64, bool) {
    let consumer: BaseConsumer = kafka_config()
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let Ok(committed) = consumer.committed_offsets(list, Duration::from_secs(5)) else {
        return (0, false);
    };
    let mut sum = 0;
    let mut done = true;
    for e in committed.elements() {
        let Ok((_, high)) = consumer.fetch_watermarks(topic, e.partition(), Duration::from_secs(5))
        else {
            return (sum, false);
        };
        let at = match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        };
        sum += at as u64;
        done &= at >= high;
    }
    (sum, done)
}

/// One replay's figures.
struct Replay {
    /// Events/s from starting the process to the last commit.
    wall: f64,
    /// Events/s from the first commit seen to the last (start-up, group
    /// join and the first batch left out).
    steady: f64,
    /// The projector's own `/metrics` at the end: where its batches' time went.
    profile: Profile,
}

/// `projector_batch_stage_seconds` sums and counts by stage, and batch sizes.
#[derive(Default)]
struct Profile {
    stages: Vec<(String, f64, f64)>,
    batches: f64,
    messages: f64,
}

impl Profile {
    fn parse(text: &str) -> Self {
        let mut profile = Profile::default();
        let value = |line: &str| {
            line.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let stage = |line: &str| {
            line.split("stage=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_default()
                .to_owned()
        };
        for line in text.lines() {
            if line.starts_with("projector_batch_stage_seconds_sum") {
                profile.stages.push((stage(line), value(line), 0.0));
            } else if line.starts_with("projector_batch_stage_seconds_count") {
                let name = stage(line);
                if let Some(s) = profile.stages.iter_mut().find(|s| s.0 == name) {
                    s.2 = value(line);
                }
            } else if line.starts_with("projector_batches_total") {
                profile.batches = value(line);
            } else if line.starts_with("projector_batch_messages_total") {
                profile.messages = value(line);
            }
        }
        profile
    }

    /// One line per stage: mean ms per batch and share of `wall` seconds.
    fn print(&self, label: &str, wall: f64) {
        println!(
            "  {label}: {:.0} batches, mean {:.0} messages a batch",
            self.batches,
            self.messages / self.batches.max(1.0)
        );
        for stage in ORDER {
            if let Some((_, sum, count)) = self.stages.iter().find(|s| s.0 == *stage) {
                println!(
                    "    {stage:>13}: {:>7.2} ms a batch ({:>5.0} times) {:>5.1}% of the run",
                    sum / count.max(1.0) * 1000.0,
                    count,
                    sum / wall * 100.0
                );
            }
        }
    }
}

/// The stages in the order a batch goes through them; those inside `apply`
/// are indented by name.
const ORDER: &[&str] = &[
    "wait",
    "fill",
    "decode",
    "inbox_check",
    "dead_letter",
    "apply",
    "store_read",
    "inbox_seen",
    "inbox_record",
    "store_write",
    "tx_commit",
    "settle",
    "held_retry",
    "commit",
    "ahead_wait",
];

async fn replay(backend: Backend, topic: &str, events: usize, inbox: bool) -> Replay {
    let mut env = Env::new("bench").await;
    env.topic = topic.to_owned();
    let started = Instant::now();
    let batch = batch().to_string();
    let running = backend.start_with(
        &env,
        &[
            "--inbox",
            if inbox { "true" } else { "false" },
            "--batch-size",
            &batch,
        ],
    );
    let mut first: Option<(Instant, u64)> = None;
    loop {
        let (group, topic) = (env.group.clone(), env.topic.clone());
        let (at, done) = tokio::task::spawn_blocking(move || committed(&group, &topic, 6))
            .await
            .expect("check");
        if first.is_none() && at > 0 {
            first = Some((Instant::now(), at));
        }
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let steady = match first {
        Some((at, from)) if at.elapsed().as_secs_f64() > 0.0 => {
            (events as u64 - from) as f64 / at.elapsed().as_secs_f64()
        }
        _ => f64::NAN,
    };
    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", running.ops_port))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    running.stop().await;
    Replay {
        wall: events as f64 / elapsed,
        steady,
        profile: Profile::parse(&metrics),
    }
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
    for (chunk, decoded) in events.chunks(batch()).zip(decoded.chunks(batch())) {
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
        "projector replay: {} events over {orders} orders, 6 partitions, batches of up to {}",
        events.len(),
        batch()
    );
    println!(
        "{:>9} | {:>12} | {:>12} {:>12} | {:>12} {:>12} | {:>7} {:>10}",
        "projector",
        "raw store/s",
        "inbox/s",
        "no inbox/s",
        "inbox st./s",
        "no inb st./s",
        "vs raw",
        "inbox cost"
    );
    let mut profiles = Vec::new();
    let picked = std::env::var("BENCH_PROJECTORS").unwrap_or_default();
    let picked: Vec<&str> = picked.split(',').filter(|s| !s.is_empty()).collect();
    for backend in Backend::all() {
        let name = format!("{backend:?}").to_lowercase();
        if !picked.is_empty() && !picked.contains(&name.as_str()) {
            continue;
        }
        let raw = raw_baseline(backend, &events).await;
        // Without the inbox first, so a warm cache never favours the inbox run.
        let without = replay(backend, &topic, events.len(), false).await;
        let with_inbox = replay(backend, &topic, events.len(), true).await;
        println!(
            "{name:>9} | {raw:>12.0} | {:>12.0} {:>12.0} | {:>12.0} {:>12.0} | {:>6.2}x {:>9.0}%",
            with_inbox.wall,
            without.wall,
            with_inbox.steady,
            without.steady,
            with_inbox.wall / raw,
            (1.0 - with_inbox.wall / without.wall) * 100.0
        );
        profiles.push((name, with_inbox, without));
    }
    println!(
        "(inbox/s, no inbox/s: from starting the process to the last commit; st./s: from the first commit seen, \
         start-up and group join left out; vs raw and inbox cost from the first two)"
    );
    println!("where each replay's time went (the projector's projector_batch_stage_seconds):");
    for (name, with_inbox, without) in &profiles {
        with_inbox.profile.print(
            &format!("{name} with inbox"),
            events.len() as f64 / with_inbox.wall,
        );
        without.profile.print(
            &format!("{name} without inbox"),
            events.len() as f64 / without.wall,
        );
    }
}
