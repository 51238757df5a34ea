//! `orderctl rebuild summary`: a new `order_summary` filled beside the
//! live one, from the write model or by replay from Kafka, and swapped in
//! in one transaction.
//!
//! Writes that arrive while it runs are not lost, and readers never see an
//! order go back: the live projector keeps writing the live table
//! throughout, and the swap transaction locks that table against writes
//! (not reads), brings every order the live table has ahead of the shadow
//! up to date in the shadow, and only then puts the shadow in its place.
//! This was chosen over having the projector also write the shadow: it
//! keeps the projector unchanged and makes "caught up" one query under the
//! lock rather than an argument about two writers. From the write model,
//! the orders behind are read again from the write model; from Kafka, the
//! replay reads on to the high watermarks taken under the lock, and the
//! swap is refused if any order is still behind (the replay then lacks an
//! event the live projector applied). Before taking the lock, the copy is
//! brought close to the live one without it (the orders changed since the
//! fill began, or the replay up to the live group's committed offsets), so
//! the lock is held for the last few events only.
//!
//! Resumable: the shadow, its table comment (source, fill start) and, from
//! Kafka, the replay's consumer group stay behind when a rebuild dies; the
//! next run carries on from the shadow's last order id or the group's
//! committed offsets.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use orderflow_readstore::summary::shadow::{Shadow, SwapTx};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::progress::Progress;
use super::replay::high_watermarks;
use super::{Job, KafkaSource, Source};

/// The replay's inbox scope (its consumer group is `<live group>.rebuild`).
pub const SCOPE: &str = "summary-projector.rebuild";

/// How long the swap waits for the live projector's transaction to end.
const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// What a summary rebuild did.
#[derive(Debug, Clone, Default)]
pub struct SummaryRebuildReport {
    pub source: String,
    /// Whether an earlier run's shadow was carried on.
    pub resumed: bool,
    /// Orders (write model) or events (Kafka) written into the shadow by
    /// the fill.
    pub filled: u64,
    /// Orders written again before the lock, and under it.
    pub caught_up_before_lock: u64,
    pub caught_up_under_lock: u64,
    /// Orders the live table had at a version the write model does not
    /// (live was ahead of the truth; the write model's state went live).
    pub live_ahead_of_source: u64,
    /// Rows in the table that went live.
    pub rows: i64,
    /// How long the live table was locked against writes.
    pub locked_for: Duration,
    pub elapsed: Duration,
}

impl SummaryRebuildReport {
    /// Orders (or events) per second over the whole rebuild.
    pub fn rate(&self) -> f64 {
        self.filled as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }
}

/// Rebuilds `order_summary` from `source`.
pub async fn rebuild_summary(
    write: &PgPool,
    read: &PgPool,
    source: &Source,
    batch: i64,
    progress: &dyn Progress,
    token: &CancellationToken,
) -> anyhow::Result<SummaryRebuildReport> {
    let started = Instant::now();
    let shadow = Shadow::open(read, source.name())
        .await
        .context("opening the shadow table in the read database (READ_DATABASE_URL)")?;
    if shadow.resumed {
        tracing::info!(
            source = source.name(),
            rows = shadow.rows().await?,
            "orderctl.rebuild resuming the shadow order_summary a stopped rebuild left"
        );
    }
    let mut report = SummaryRebuildReport {
        source: source.name().to_owned(),
        resumed: shadow.resumed,
        ..SummaryRebuildReport::default()
    };
    let job = Job::new(write, read, batch, progress, token);
    match source {
        Source::WriteModel => from_write_model(&job, &shadow, &mut report).await?,
        Source::Kafka(kafka) => from_kafka(&job, &shadow, kafka, &mut report).await?,
    }
    report.rows = sqlx::query_scalar("SELECT count(*) FROM order_summary")
        .fetch_one(read)
        .await?;
    report.elapsed = started.elapsed();
    Ok(report)
}

async fn from_write_model(
    job: &Job<'_>,
    shadow: &Shadow,
    report: &mut SummaryRebuildReport,
) -> anyhow::Result<()> {
    let (write, batch) = (job.write, job.batch);
    let after = shadow.last_id().await?;
    let done = u64::try_from(shadow.rows().await?)?;
    report.filled = job
        .fill(after, done, |summaries, _| async move {
            shadow.backfill(&summaries).await?;
            Ok(())
        })
        .await?;

    // Orders changed since the fill began: once more, without the lock.
    let changed = changed_since(write, shadow.meta.began).await?;
    for chunk in changed.chunks(usize::try_from(batch)?) {
        let summaries = orderflow_writemodel::readback::summaries(write, Some(chunk)).await?;
        shadow.backfill(&summaries).await?;
    }
    report.caught_up_before_lock = changed.len() as u64;
    shadow.analyze().await?;

    let locked = Instant::now();
    let mut swap = shadow.begin_swap(LOCK_TIMEOUT).await?;
    let behind: Vec<Uuid> = swap.behind().await?.into_iter().map(|b| b.0).collect();
    for chunk in behind.chunks(usize::try_from(batch)?) {
        let summaries = orderflow_writemodel::readback::summaries(write, Some(chunk)).await?;
        swap.backfill(&summaries).await?;
    }
    report.caught_up_under_lock = behind.len() as u64;
    // What is still behind is ahead of the write model in the live table.
    report.live_ahead_of_source = swap.behind().await?.len() as u64;
    commit(swap, report, locked).await
}

async fn from_kafka(
    job: &Job<'_>,
    shadow: &Shadow,
    kafka: &KafkaSource,
    report: &mut SummaryRebuildReport,
) -> anyhow::Result<()> {
    let (mut replay, filled) = job.replay(kafka, shadow.projection(), SCOPE).await?;
    report.filled = filled;
    shadow.analyze().await?;

    let locked = Instant::now();
    let mut swap = shadow.begin_swap(LOCK_TIMEOUT).await?;
    // The live projector cannot write now: everything it applied is below
    // these watermarks.
    let under_lock = high_watermarks(kafka).await?;
    let before = replay.position();
    replay
        .run_until(&under_lock, &super::progress::Silent)
        .await?;
    report.caught_up_under_lock = replay.position() - before;
    let behind = swap.behind().await?;
    if !behind.is_empty() {
        swap.abandon().await?;
        let (order, live, copy) = behind[0];
        anyhow::bail!(
            "the replayed copy is behind the live order_summary on {} orders (e.g. {order}: live v{live}, copy {}); \
             not swapped (the replay lacks events the live projector applied: {} gaps)",
            behind.len(),
            copy.map_or("missing".to_owned(), |v| format!("v{v}")),
            replay.counts.gaps
        );
    }
    commit(swap, report, locked).await?;
    replay
        .drop_scope()
        .await
        .context("dropping the replay's inbox scope and consumer group")
}

async fn commit(
    swap: SwapTx,
    report: &mut SummaryRebuildReport,
    locked: Instant,
) -> anyhow::Result<()> {
    swap.commit()
        .await
        .context("swapping the shadow order_summary in")?;
    report.locked_for = locked.elapsed();
    tracing::info!(
        locked_ms = report.locked_for.as_millis() as u64,
        "orderctl.rebuild order_summary swapped"
    );
    Ok(())
}

/// Orders whose write-model row changed at or after `since`.
pub(crate) async fn changed_since(
    write: &PgPool,
    since: time::OffsetDateTime,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("SELECT id FROM orders WHERE updated_at >= $1 ORDER BY id")
        .bind(since)
        .fetch_all(write)
        .await
}
