//! Rebuilding the summary table, the status cache and the search index
//! beside the live ones while commands keep flowing through the real
//! order-command and a reader polls the real order-query (for the search
//! index, every page of the shop's orders): no read fails, no order's
//! version ever goes back, no order found before goes missing, and
//! afterwards `orderctl reconcile` finds the rebuilt models equal to the
//! write model field by field. From the write model and by replay from
//! Kafka; the replay has its own inbox scope (the live projector's inbox
//! has seen every event) that is gone after the swap. And `orderctl
//! rebuild`, killed with SIGKILL half-way, carries on when run again.
//!
//! The rebuild is held after its fill until the traffic has acknowledged
//! more commands ([`Gate`]), so writes really arrive between the copy and
//! the swap, the window where a rebuild could lose them.

#![allow(clippy::print_stdout)] // the figures are the output

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use orderflow_ops::rebuild::{self, KafkaSource, Progress, SearchRebuild, Source};
use orderflow_readstore::search::index;
use orderflow_readstore::status::StatusProjection;
use system_tests::traffic::{Observed, Shop, Traffic};
use system_tests::{Pipeline, ServiceProcess, text};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Orders placed before the traffic starts.
const ORDERS: usize = 200;

/// Holds a rebuild at the end of each phase until the traffic has
/// acknowledged `more` commands since the phase began, and the reader has
/// then read every order it polls (those new ones included) twice; and a
/// search rebuild right after its swap until the reader has read the new
/// index.
struct Gate {
    commands: Arc<AtomicU64>,
    reads: Arc<AtomicU64>,
    more: u64,
    at_phase: AtomicU64,
}

impl Gate {
    fn new(traffic: &Traffic) -> Self {
        let (commands, reads) = traffic.counters();
        Self {
            commands,
            reads,
            more: 20,
            at_phase: AtomicU64::new(0),
        }
    }
}

/// Blocks until `counter` reaches `target`, within a minute.
fn block_until(counter: &AtomicU64, target: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    tokio::task::block_in_place(|| {
        while counter.load(Ordering::Relaxed) < target {
            assert!(Instant::now() < deadline, "no {what} during the rebuild");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
}

impl Progress for Gate {
    fn phase(&self, name: &str, _: u64) {
        self.at_phase
            .store(self.commands.load(Ordering::Relaxed), Ordering::Relaxed);
        if name == rebuild::search::AFTER_SWAP {
            // Just swapped: the reader walks the new index (a round of
            // orders and a search walk) before the last pass.
            let reads = self.reads.load(Ordering::Relaxed);
            block_until(&self.reads, reads + 150, "reads");
        }
    }
    fn position(&self, _: u64) {}
    fn finish(&self, _: &str) {
        let from = self.at_phase.load(Ordering::Relaxed);
        block_until(&self.commands, from + self.more, "commands");
        let reads = self.reads.load(Ordering::Relaxed);
        block_until(&self.reads, reads + 300, "reads");
    }
}

struct Running {
    pipeline: Pipeline,
    _services: Vec<ServiceProcess>,
    shop: Shop,
    query: String,
    orders: Vec<Uuid>,
}

/// A pipeline with order-command, the relay, the summary and status
/// projectors (and the search projector for `Model::Search`) and
/// order-query, and `ORDERS` orders visible in the summary (and search).
async fn running(name: &str, model: Model) -> Running {
    let pipeline = Pipeline::fresh(name).await;
    let command = pipeline.start("order-command", &[]).await;
    let relay = pipeline.start("outbox-relay", &[]).await;
    let summary = pipeline.start("summary-projector", &[]).await;
    let status = pipeline.start("status-projector", &[]).await;
    let mut services = vec![command, relay, summary, status];
    if model == Model::Search {
        services.push(pipeline.start("search-projector", &[]).await);
    }
    let query = pipeline.start("order-query", &[]).await;
    let command = &services[0];
    let http = reqwest::Client::new();
    let shop = Shop::open(&http, &command.base, &pipeline.topic).await;
    let mut orders = Vec::new();
    for n in 0..ORDERS {
        orders.push(shop.order(&http, n, n.is_multiple_of(2)).await.0);
    }
    let read = pipeline.read.pool.clone();
    orderflow_testkit::eventually(
        "the first orders in order_summary",
        Duration::from_secs(120),
        || async {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM order_summary")
                .fetch_one(&read)
                .await
                .ok()?;
            (n >= ORDERS as i64).then_some(())
        },
    )
    .await;
    if model == Model::Search {
        let client = orderflow_testkit::search_client().await;
        let alias = pipeline.alias.clone();
        orderflow_testkit::eventually(
            "the first orders in the search index",
            Duration::from_secs(120),
            || async {
                index::refresh(&client, &alias).await.ok()?;
                let n = index::count(&client, &alias).await.ok()?;
                (n >= ORDERS as u64).then_some(())
            },
        )
        .await;
    }
    let query_base = query.base.clone();
    services.push(query);
    Running {
        pipeline,
        _services: services,
        shop,
        query: query_base,
        orders,
    }
}

fn kafka(pipeline: &Pipeline, projector: &str) -> Source {
    Source::Kafka(KafkaSource {
        config: orderflow_testkit::kafka_config(),
        topic: pipeline.topic.clone(),
        live_group: format!("{projector}-{}", pipeline.topic),
    })
}

/// No errors, no regressions, traffic all along; then reconcile agrees.
async fn assert_invisible_and_converged(pipeline: &Pipeline, observed: &Observed, only: &str) {
    println!(
        "rebuild: {} reads, {} commands during the rebuilds",
        observed.reads, observed.commands
    );
    assert!(
        observed.errors.is_empty(),
        "reads failed during the rebuild: {:?}",
        &observed.errors[..observed.errors.len().min(10)]
    );
    assert!(
        observed.regressions.is_empty(),
        "versions went back during the rebuild: {:?}",
        &observed.regressions[..observed.regressions.len().min(10)]
    );
    assert!(observed.reads > 0 && observed.commands > 0);
    assert_converged(pipeline, only).await;
}

/// `orderctl reconcile --only <only>` finds no drift (within two minutes).
async fn assert_converged(pipeline: &Pipeline, only: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = pipeline.orderctl(&["reconcile", "--only", only]).await;
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reconcile still finds drift after the rebuild: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
}

async fn inbox_rows(pipeline: &Pipeline, consumer: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM inbox WHERE consumer = $1")
        .bind(consumer)
        .fetch_one(&pipeline.read.pool)
        .await
        .expect("inbox")
}

/// The read model a test rebuilds.
#[derive(Clone, Copy, PartialEq)]
enum Model {
    Summary,
    Status,
    Search,
}

impl Model {
    /// The `orderctl rebuild` / `reconcile --only` argument.
    fn arg(self) -> &'static str {
        match self {
            Self::Summary => "summary",
            Self::Status => "status",
            Self::Search => "search",
        }
    }

    fn projector(self) -> &'static str {
        match self {
            Self::Summary => "summary-projector",
            Self::Status => "status-projector",
            Self::Search => "search-projector",
        }
    }

    /// The replay's inbox scope.
    fn scope(self) -> &'static str {
        match self {
            Self::Summary => rebuild::summary::SCOPE,
            Self::Status => rebuild::status::SCOPE,
            Self::Search => rebuild::search::SCOPE,
        }
    }
}

/// Runs one rebuild of `model` from `source` under traffic and checks it:
/// no error, no regression, then zero drift and the scope dropped.
async fn rebuild_under_traffic(name: &str, model: Model, from_kafka: bool) {
    let run = running(name, model).await;
    let pipeline = &run.pipeline;
    let traffic = if model == Model::Search {
        Traffic::start_with_search(run.shop.clone(), run.query.clone(), run.orders.clone())
    } else {
        Traffic::start(run.shop.clone(), run.query.clone(), run.orders.clone())
    };
    let gate = Gate::new(&traffic);
    let token = CancellationToken::new();
    let (write, read) = (&pipeline.write.pool, &pipeline.read.pool);
    let projector = model.projector();
    let source = if from_kafka {
        kafka(pipeline, projector)
    } else {
        Source::WriteModel
    };
    let status = StatusProjection::new(orderflow_testkit::redis_client(), pipeline.prefix.clone());
    match model {
        Model::Summary => {
            let report = rebuild::rebuild_summary(write, read, &source, 100, &gate, &token)
                .await
                .expect("summary rebuild");
            println!("rebuild summary from {}: {report:?}", source.name());
            assert!(
                report.filled >= ORDERS as u64 && !report.resumed,
                "{report:?}"
            );
        }
        Model::Status => {
            let report = rebuild::rebuild_status(write, read, &status, &source, 100, &gate, &token)
                .await
                .expect("status rebuild");
            println!("rebuild status from {}: {report:?}", source.name());
            assert_eq!((report.from, report.to), (0, 1));
            assert!(report.deleted >= ORDERS as u64, "{report:?}");
            assert_eq!(status.generation().await.expect("generation"), 1);
        }
        Model::Search => {
            let target = SearchRebuild {
                client: orderflow_testkit::search_client().await,
                alias: pipeline.alias.clone(),
                keep_old: false,
                batch: 100,
            };
            let report = rebuild::rebuild_search_from(write, read, &target, &source, &gate, &token)
                .await
                .expect("search rebuild");
            println!("rebuild search from {}: {report:?}", source.name());
            let alias = &pipeline.alias;
            assert_eq!(report.from, [format!("{alias}_v1")], "{report:?}");
            assert_eq!(report.to, format!("{alias}_v2"), "{report:?}");
            assert!(!report.resumed, "{report:?}");
            let filled = if from_kafka {
                report.replayed
            } else {
                report.fill.orders
            };
            assert!(filled >= ORDERS as u64, "{report:?}");
        }
    }
    // Every polled order read at least twice more after the swap.
    traffic.wait_for_reads(600).await;
    let observed = traffic.stop().await;
    assert_eq!(
        inbox_rows(pipeline, model.scope()).await,
        0,
        "the replay's inbox scope is dropped after the swap"
    );
    assert!(
        inbox_rows(pipeline, projector).await > 0,
        "the live projector's inbox stays"
    );
    assert_copy_live(pipeline, model).await;
    assert_invisible_and_converged(pipeline, &observed, model.arg()).await;
}

/// What a finished rebuild of `model` leaves: the copy live, the old one
/// gone.
async fn assert_copy_live(pipeline: &Pipeline, model: Model) {
    match model {
        Model::Summary => assert_shadow_gone(&pipeline.read.pool).await,
        Model::Status => assert_generation_gone(&pipeline.prefix, 0).await,
        Model::Search => {
            let client = orderflow_testkit::search_client().await;
            let alias = &pipeline.alias;
            assert_eq!(
                index::behind(&client, alias).await.expect("alias"),
                [format!("{alias}_v2")]
            );
            let old = format!("{alias}_v1");
            assert!(
                !index::exists(&client, &old).await.expect("exists"),
                "the old index is deleted"
            );
            assert_eq!(
                index::refresh_interval(&client, &format!("{alias}_v2"))
                    .await
                    .expect("settings")
                    .as_deref(),
                Some(index::REFRESH_INTERVAL),
                "the new index is refreshed as the live one was"
            );
        }
    }
}

async fn assert_shadow_gone(read: &sqlx::PgPool) {
    let leftover: Option<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname = 'rebuild'")
            .fetch_optional(read)
            .await
            .expect("schemas");
    assert_eq!(leftover, None, "the shadow's schema is gone after the swap");
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE tablename = 'order_summary' ORDER BY 1",
    )
    .fetch_all(read)
    .await
    .expect("indexes");
    assert!(
        indexes.contains(&"order_summary_customer_idx".to_owned())
            && indexes.contains(&"order_summary_pkey".to_owned()),
        "the live index names are kept: {indexes:?}"
    );
}

async fn assert_generation_gone(prefix: &str, generation: u64) {
    let old = StatusProjection::new(orderflow_testkit::redis_client(), prefix.to_owned())
        .pinned(generation);
    let mut cursor = 0;
    loop {
        let (next, ids) = old.scan_ids(cursor, 10_000).await.expect("scan");
        assert!(
            ids.is_empty(),
            "generation {generation} is deleted: {ids:?}"
        );
        if next == 0 {
            break;
        }
        cursor = next;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn summary_rebuild_from_the_write_model_while_orders_flow() {
    rebuild_under_traffic("rbsumw", Model::Summary, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn summary_rebuild_by_replay_from_kafka_while_orders_flow() {
    rebuild_under_traffic("rbsumk", Model::Summary, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_rebuild_from_the_write_model_while_orders_flow() {
    rebuild_under_traffic("rbstatw", Model::Status, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_rebuild_by_replay_from_kafka_while_orders_flow() {
    rebuild_under_traffic("rbstatk", Model::Status, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_rebuild_from_the_write_model_while_orders_flow() {
    rebuild_under_traffic("rbsrchw", Model::Search, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_rebuild_by_replay_from_kafka_while_orders_flow() {
    rebuild_under_traffic("rbsrchk", Model::Search, true).await;
}

/// `orderctl rebuild <model> --from <source>` started, held once its
/// position reaches 50 (everything before durable), killed with SIGKILL
/// there, and run again: the second run carries on what the first left
/// and ends with the model swapped in, equal to the write model.
async fn resumes_after_kill_9(name: &str, model: Model, from_kafka: bool) {
    let run = running(name, model).await;
    let pipeline = &run.pipeline;
    let (model_arg, scope) = (model.arg(), model.scope());
    let source = if from_kafka { "kafka" } else { "write-model" };
    let args = ["rebuild", model_arg, "--from", source, "--batch", "10"];
    let mut first = std::process::Command::new(system_tests::binary("orderctl"))
        .args(args)
        .envs(pipeline.env("orderctl"))
        .env("ORDERCTL_TEST_HOLD_AT", "50")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("orderctl rebuild");
    let status = StatusProjection::new(orderflow_testkit::redis_client(), pipeline.prefix.clone());
    // Held: its log says so once position 50 is durable.
    let held = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stderr = first.stderr.take().expect("stderr");
    std::thread::spawn({
        let held = held.clone();
        move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("held by ORDERCTL_TEST_HOLD_AT") {
                    held.store(true, Ordering::Relaxed);
                }
            }
        }
    });
    orderflow_testkit::eventually(
        "the first run to reach its hold point",
        Duration::from_secs(120),
        || async { held.load(Ordering::Relaxed).then_some(()) },
    )
    .await;
    assert!(
        first.try_wait().expect("wait").is_none(),
        "the first run is held, not finished"
    );
    first.kill().expect("kill -9");
    let killed = first.wait().expect("wait");
    assert!(!killed.success(), "killed: {killed}");

    let second = pipeline
        .orderctl(&[
            "--json", "rebuild", model_arg, "--from", source, "--batch", "10",
        ])
        .await;
    assert!(
        second.status.success(),
        "second run: {}{}",
        text(&second.stdout),
        text(&second.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&second.stdout).expect("the second run's JSON report");
    println!("rebuild {model_arg} from {source} after kill -9: {report}");
    assert_eq!(report["resumed"], true, "{report}");
    // The first run's 50 are not done again: the progress survived.
    let total: i64 = if from_kafka {
        sqlx::query_scalar("SELECT sum(version)::bigint FROM orders")
    } else {
        sqlx::query_scalar("SELECT count(*) FROM orders")
    }
    .fetch_one(&pipeline.write.pool)
    .await
    .expect("write model");
    let filled = report["filled"].as_i64().expect("filled");
    assert!(
        filled + 50 <= total,
        "the second run did {filled} of {total} again: {report}"
    );
    assert_eq!(inbox_rows(pipeline, scope).await, 0);
    if model == Model::Status {
        assert!(status.rebuilding().await.expect("redis").is_none());
    }
    assert_copy_live(pipeline, model).await;
    assert_converged(pipeline, model_arg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn summary_rebuild_from_kafka_resumes_after_kill_9() {
    resumes_after_kill_9("rbsumkill", Model::Summary, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_rebuild_from_the_write_model_resumes_after_kill_9() {
    resumes_after_kill_9("rbstatkill", Model::Status, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_rebuild_from_kafka_resumes_after_kill_9() {
    resumes_after_kill_9("rbstatkkill", Model::Status, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn summary_rebuild_from_the_write_model_resumes_after_kill_9() {
    resumes_after_kill_9("rbsumwkill", Model::Summary, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_rebuild_from_kafka_resumes_after_kill_9() {
    resumes_after_kill_9("rbsrchkkill", Model::Search, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_rebuild_from_the_write_model_resumes_after_kill_9() {
    resumes_after_kill_9("rbsrchwkill", Model::Search, false).await;
}
