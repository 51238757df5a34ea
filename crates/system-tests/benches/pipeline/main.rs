//! The whole pipeline at a sustained rate, as a user runs it: every service
//! a release binary in its own process, on the topology `orderctl setup`
//! makes, driven over HTTP by an open-loop generator (`load`), with each
//! read model polled for the versions the commands returned
//! (`visibility`) and each process's CPU and memory read from `/proc`
//! (`procs`).
//!
//! Two parts: a steady phase at `BENCH_RATE` operations a second for
//! `BENCH_SECS` (command latency p50/p99/p999, commit→visible per read model,
//! backlog over time, CPU seconds per command and resident memory per
//! service), then a step test over `BENCH_STEPS` rates of `BENCH_STEP_SECS`
//! each, to the highest rate at which every read model keeps up. Both sit
//! beside a baseline from the same run: the command service's closed-loop
//! PlaceOrder capacity at concurrency 32, the most it can take with nothing
//! else asked of it.
//!
//! Build the binaries first: `cargo build --release --workspace --bins`;
//! then `cargo bench -p system-tests --bench pipeline` (`scripts/bench`
//! does both). `BENCH_OUT=<dir>` also writes `pipeline.json`,
//! `pipeline-series.csv` (backlog and memory each second) and
//! `pipeline-latency.csv` (command and read latency percentiles per second
//! of intended send time) there for the report's plots.

#![allow(clippy::print_stdout)] // figures are the output

mod load;
mod procs;
mod visibility;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use system_tests::{Pipeline, ServiceProcess};
use tokio_util::sync::CancellationToken;

use crate::load::{Generator, Phase, Target};
use crate::visibility::{STORES, Stores, Visibility};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const SERVICES: [&str; 6] = [
    "order-command",
    "outbox-relay",
    "summary-projector",
    "search-projector",
    "status-projector",
    "order-query",
];

#[tokio::main]
async fn main() {
    let rate = env_or("BENCH_RATE", 500);
    let secs = env_or("BENCH_SECS", 60);
    let step_secs = env_or("BENCH_STEP_SECS", 20);
    let steps: Vec<u64> = std::env::var("BENCH_STEPS")
        .unwrap_or_else(|_| "250,500,750,1000,1500,2000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let out = std::env::var_os("BENCH_OUT").map(std::path::PathBuf::from);
    if cfg!(debug_assertions) {
        panic!(
            "run the pipeline bench as a release build: cargo bench -p system-tests --bench pipeline"
        );
    }

    let pipeline = Pipeline::fresh("bench_pipeline").await;
    let mut processes = Vec::new();
    // Every request comes from one anonymous subject: the per-subject rate
    // limit would measure itself, not the pipeline.
    let unlimited = [
        ("RATE_LIMIT_PER_SECOND", "1000000".to_owned()),
        ("RATE_LIMIT_BURST", "1000000".to_owned()),
    ];
    for name in SERVICES {
        processes.push(pipeline.start(name, &unlimited).await);
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("http client");
    let command = processes[0].base.clone();
    let query = processes[5].base.clone();
    let (customer, products) = catalog(&http, &command).await;

    println!(
        "pipeline bench: {} cores, {} MiB memory; every service a release process on `orderctl setup`'s topology",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_mib()
    );
    let capacity = closed_loop_capacity(&http, &command, &customer, &products).await;
    println!(
        "baseline: closed-loop PlaceOrder capacity at concurrency 32 for 5 s: {capacity:.0}/s"
    );

    let visibility = Arc::new(Visibility::new());
    let stores = Stores {
        read: pipeline.read.pool.clone(),
        search_url: orderflow_testkit::search_url(),
        alias: pipeline.alias.clone(),
        status: Arc::new(orderflow_readstore::status::StatusProjection::new(
            redis::Client::open(orderflow_testkit::redis_url()).expect("redis url"),
            pipeline.prefix.clone(),
        )),
    };
    let polling = CancellationToken::new();
    let pollers = visibility::spawn_pollers(visibility.clone(), stores, polling.clone());
    drain(&visibility, &pipeline, Duration::from_secs(60)).await;
    visibility.take();

    let mut generator = Generator::new(
        Target {
            http: http.clone(),
            command,
            query,
            customer,
            products,
        },
        visibility.clone(),
        env_or("BENCH_SEED", 1),
    );

    // Steady phase, sampled every second.
    let series = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sampling = CancellationToken::new();
    let sampler = tokio::spawn(sample(
        visibility.clone(),
        pipeline.write.pool.clone(),
        processes.iter().map(|p| p.child.id()).collect(),
        series.clone(),
        sampling.clone(),
    ));
    let before: Vec<procs::Usage> = processes
        .iter()
        .map(|p| procs::usage(p.child.id()))
        .collect();
    let started = Instant::now();
    let steady = generator.run(rate, secs).await;
    let drained = drain(&visibility, &pipeline, Duration::from_secs(120)).await;
    let after: Vec<procs::Usage> = processes
        .iter()
        .map(|p| procs::usage(p.child.id()))
        .collect();
    sampling.cancel();
    let _ = sampler.await;
    let visible = visibility.take();
    print_steady(
        &steady, &visible, drained, &processes, &before, &after, capacity,
    );

    // Step test.
    println!(
        "\nstep test: {step_secs} s per rate; keeps up = every read model and the outbox drained within 2 s of the step's end and command p99 under 500 ms"
    );
    println!(
        "{:>6} | {:>9} {:>9} | {:>10} {:>10} {:>10} | {:>7} | verdict",
        "rate/s", "cmd p50", "cmd p99", "summary99", "search99", "status99", "drain"
    );
    let mut step_rows = Vec::new();
    let mut sustainable = 0;
    for step in &steps {
        let phase = generator.run(*step, step_secs).await;
        let drained = drain(&visibility, &pipeline, Duration::from_secs(60)).await;
        let visible = visibility.take();
        let keeps_up = drained.is_some_and(|d| d <= Duration::from_secs(2))
            && phase.commands.value_at_quantile(0.99) <= 500_000
            && phase.errors.is_empty();
        if keeps_up {
            sustainable = sustainable.max(*step);
        }
        println!(
            "{step:>6} | {:>9} {:>9} | {:>10} {:>10} {:>10} | {:>7} | {}",
            ms(phase.commands.value_at_quantile(0.5)),
            ms(phase.commands.value_at_quantile(0.99)),
            ms(visible[0].value_at_quantile(0.99)),
            ms(visible[1].value_at_quantile(0.99)),
            ms(visible[2].value_at_quantile(0.99)),
            drained.map_or("> 60 s".into(), |d| format!("{:.1} s", d.as_secs_f64())),
            if keeps_up { "keeps up" } else { "falls behind" },
        );
        step_rows.push(json!({
            "rate": step, "commands": summary(&phase.commands), "errors": phase.errors,
            "visible": STORES.iter().zip(&visible).map(|(s, h)| (s.to_string(), summary(h))).collect::<BTreeMap<_, _>>(),
            "drain_secs": drained.map(|d| d.as_secs_f64()), "keeps_up": keeps_up,
        }));
        if !keeps_up {
            break;
        }
    }
    println!(
        "highest sustainable rate: {sustainable}/s of the mix, {:.2}x the closed-loop PlaceOrder capacity ({capacity:.0}/s)",
        sustainable as f64 / capacity
    );

    polling.cancel();
    futures::future::join_all(pollers).await;
    if let Some(dir) = out {
        write_out(
            &dir,
            &steady,
            &visible_json(&visible),
            &series,
            &processes,
            &after,
            capacity,
            step_rows,
            sustainable,
            started,
        );
    }
    for mut p in processes {
        p.terminate(Duration::from_secs(20)).await;
    }
}

/// A customer and a catalogue of 200 products with stock for any run.
async fn catalog(http: &reqwest::Client, command: &str) -> (String, Vec<String>) {
    let (status, customer) = system_tests::post(
        http,
        format!("{command}/customers"),
        json!({"name": "Bench", "email": "bench@example.com"}),
    )
    .await;
    assert_eq!(status, 201, "creating the bench customer: {customer}");
    let id = |v: &Value| v["id"].as_str().expect("id").to_owned();
    let mut products = Vec::with_capacity(200);
    for i in 0..200 {
        let (status, product) = system_tests::post(
            http,
            format!("{command}/products"),
            json!({"sku": format!("BENCH-{i}"), "name": format!("Bench product {i}"), "unit_price_minor": 999, "currency": "EUR", "stock": 1_000_000_000}),
        )
        .await;
        assert_eq!(status, 201, "creating a bench product: {product}");
        products.push(id(&product));
    }
    (id(&customer), products)
}

/// PlaceOrder as fast as 32 clients can send it, for 5 s (three distinct
/// products per order, as the generator sends).
async fn closed_loop_capacity(
    http: &reqwest::Client,
    command: &str,
    customer: &str,
    products: &[String],
) -> f64 {
    let until = Instant::now() + Duration::from_secs(5);
    let started = Instant::now();
    let done: Vec<u64> = futures::future::join_all((0..32).map(|client| {
        let (http, url) = (http.clone(), format!("{command}/orders"));
        async move {
            let mut n = 0;
            while Instant::now() < until {
                let first = (client * 7 + n as usize * 3) % products.len();
                let lines: Vec<Value> = (0..3)
                    .map(|k| json!({"product_id": products[(first + k) % products.len()], "quantity": 1}))
                    .collect();
                let body = json!({"customer_id": customer, "lines": lines,
                    "shipping_address": {"line1": "1 Bench Rd", "city": "Hull", "postal_code": "HU1", "country": "GB"}});
                let r = http.post(&url).json(&body).send().await.expect("place order");
                assert!(r.status().is_success(), "place order: {}", r.status());
                n += 1;
            }
            n
        }
    }))
    .await;
    done.iter().sum::<u64>() as f64 / started.elapsed().as_secs_f64()
}

/// Waits until no read model owes a version and the outbox is empty; how
/// long that took, or `None` past `limit`.
async fn drain(visibility: &Visibility, pipeline: &Pipeline, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    loop {
        let outbox = unpublished(&pipeline.write.pool).await;
        if outbox == 0 && visibility.backlog().iter().all(|n| *n == 0) {
            return Some(started.elapsed());
        }
        if started.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn unpublished(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(pool)
        .await
        .unwrap_or(-1)
}

/// One row a second: elapsed, outbox backlog, what each read model owes,
/// each service's resident memory (MiB).
async fn sample(
    visibility: Arc<Visibility>,
    write: sqlx::PgPool,
    pids: Vec<u32>,
    series: Arc<std::sync::Mutex<Vec<Vec<f64>>>>,
    token: CancellationToken,
) {
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while !token.is_cancelled() {
        tick.tick().await;
        let mut row = vec![
            started.elapsed().as_secs_f64(),
            unpublished(&write).await as f64,
        ];
        row.extend(visibility.backlog().iter().map(|n| *n as f64));
        row.extend(
            pids.iter()
                .map(|pid| procs::usage(*pid).rss_kib as f64 / 1024.0),
        );
        series.lock().expect("series").push(row);
    }
}

fn ms(micros: u64) -> String {
    format!("{:.1} ms", micros as f64 / 1000.0)
}

fn summary(h: &Histogram<u64>) -> Value {
    let q = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    json!({"count": h.len(), "p50_ms": q(0.5), "p99_ms": q(0.99), "p999_ms": q(0.999), "max_ms": h.max() as f64 / 1000.0})
}

fn visible_json(visible: &[Histogram<u64>; 3]) -> Value {
    json!(
        STORES
            .iter()
            .zip(visible)
            .map(|(s, h)| (s.to_string(), summary(h)))
            .collect::<BTreeMap<_, _>>()
    )
}

fn memory_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:").map(str::to_owned))
        })
        .and_then(|v| {
            v.split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

fn print_steady(
    steady: &Phase,
    visible: &[Histogram<u64>; 3],
    drained: Option<Duration>,
    processes: &[ServiceProcess],
    before: &[procs::Usage],
    after: &[procs::Usage],
    capacity: f64,
) {
    println!(
        "\nsteady: {} operations/s offered for {} s (open loop; {:.2}x the closed-loop capacity), {} commands acknowledged, generator at most {:.1} ms behind its schedule",
        steady.rate,
        steady.secs,
        steady.rate as f64 / capacity,
        steady.acknowledged,
        steady.worst_start_lag.as_secs_f64() * 1000.0
    );
    if !steady.errors.is_empty() {
        println!("  errors: {:?}", steady.errors);
    }
    println!("  latency from intended send time:");
    let mut ops: Vec<_> = steady.latency.iter().collect();
    ops.sort_by_key(|(op, _)| *op);
    for (op, h) in ops.into_iter().chain([(&"commands", &steady.commands)]) {
        println!(
            "  {op:>9}: n {:>6}  p50 {:>9}  p99 {:>9}  p999 {:>9}  max {:>9}",
            h.len(),
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
            ms(h.max())
        );
    }
    println!(
        "  command reply -> visible to a reader (polled every {} ms):",
        visibility::POLL.as_millis()
    );
    for (store, h) in STORES.iter().zip(visible) {
        println!(
            "  {store:>9}: n {:>6}  p50 {:>9}  p99 {:>9}  p999 {:>9}",
            h.len(),
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999))
        );
    }
    println!(
        "  drained {} after the last command",
        drained.map_or("not within 120 s".into(), |d| format!(
            "{:.1} s",
            d.as_secs_f64()
        ))
    );
    println!("  per service: CPU ms per acknowledged command, resident memory now and peak:");
    for ((p, b), a) in processes.iter().zip(before).zip(after) {
        println!(
            "  {:>17}: {:>6.2} ms CPU/command  RSS {:>4} MiB  peak {:>4} MiB",
            p.name,
            (a.cpu - b.cpu).as_secs_f64() * 1000.0 / steady.acknowledged.max(1) as f64,
            a.rss_kib / 1024,
            a.peak_rss_kib / 1024
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn write_out(
    dir: &std::path::Path,
    steady: &Phase,
    visible: &Value,
    series: &std::sync::Mutex<Vec<Vec<f64>>>,
    processes: &[ServiceProcess],
    after: &[procs::Usage],
    capacity: f64,
    steps: Vec<Value>,
    sustainable: u64,
    started: Instant,
) {
    std::fs::create_dir_all(dir).expect("BENCH_OUT dir");
    let mut csv = String::from("secs,outbox_unpublished,summary_owed,search_owed,status_owed");
    for p in processes {
        csv.push_str(&format!(",{}_rss_mib", p.name));
    }
    csv.push('\n');
    for row in series.lock().expect("series").iter() {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:.3}")).collect();
        csv.push_str(&cells.join(","));
        csv.push('\n');
    }
    std::fs::write(dir.join("pipeline-series.csv"), csv).expect("series csv");
    // Latency percentiles per second of intended send time (failed
    // operations included: their latency is what the caller waited).
    let mut latency_csv = String::from(
        "secs,commands_n,commands_p50_ms,commands_p99_ms,commands_max_ms,reads_n,reads_p50_ms,reads_p99_ms,reads_max_ms\n",
    );
    let cells = |h: &Histogram<u64>| {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        format!(
            "{},{:.3},{:.3},{:.3}",
            h.len(),
            ms(0.5),
            ms(0.99),
            h.max() as f64 / 1000.0
        )
    };
    for (second, (commands, reads)) in steady.by_second.iter().enumerate() {
        latency_csv.push_str(&format!("{second},{},{}\n", cells(commands), cells(reads)));
    }
    std::fs::write(dir.join("pipeline-latency.csv"), latency_csv).expect("latency csv");
    let report = json!({
        "rate": steady.rate, "secs": steady.secs, "capacity_closed_loop": capacity,
        "acknowledged": steady.acknowledged, "errors": steady.errors,
        "latency": steady.latency.iter().map(|(op, h)| (op.to_string(), summary(h))).collect::<BTreeMap<_, _>>(),
        "commands": summary(&steady.commands), "visible": visible,
        "memory_peak_mib": processes.iter().zip(after).map(|(p, a)| (p.name.to_string(), a.peak_rss_kib / 1024)).collect::<BTreeMap<_, _>>(),
        "steps": steps, "sustainable_rate": sustainable,
        "elapsed_secs": started.elapsed().as_secs_f64(),
    });
    std::fs::write(
        dir.join("pipeline.json"),
        serde_json::to_string_pretty(&report).expect("json"),
    )
    .expect("pipeline.json");
}
