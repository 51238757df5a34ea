//! `orderctl backfill`: fill the read models from the write model.
//!
//! The write model is the truth every read model must converge to, so a
//! read model that was lost (Redis without persistence), is new, or was fed
//! by [`crate::seed`] can be filled straight from it, far faster than by
//! replaying events. Every write is guarded by the order version exactly as
//! the projectors guard theirs: a backfill never moves a read model
//! backwards, can run beside the live projectors, and can be repeated or
//! resumed (orders are walked in id order and the log names the last one).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use orderflow_readmodel::OrderSummary;
use orderflow_readstore::ReadStore;
use orderflow_readstore::search::SearchProjection;
use orderflow_readstore::status::StatusProjection;
use orderflow_readstore::summary::SummaryProjection;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::rebuild::progress::{Progress, Silent};

/// The read models an operator picked (`--only`); `None` skips one. The
/// jobs see them only as [`ReadStore`]s ([`Targets::stores`]).
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// The read database holding `order_summary` (migrated).
    pub summary: Option<PgPool>,
    /// The search index (its alias exists).
    pub search: Option<SearchProjection>,
    /// The Redis status cache.
    pub status: Option<StatusProjection>,
}

impl Targets {
    /// The picked read models as stores, in the order reports list them
    /// (summary, search, status).
    pub fn stores(&self) -> Vec<Box<dyn ReadStore>> {
        let mut stores: Vec<Box<dyn ReadStore>> = Vec::new();
        if let Some(pool) = &self.summary {
            stores.push(Box::new(SummaryProjection { pool: pool.clone() }));
        }
        if let Some(search) = &self.search {
            stores.push(Box::new(search.clone()));
        }
        if let Some(status) = &self.status {
            stores.push(Box::new(status.clone()));
        }
        stores
    }
}

/// What a backfill did.
#[derive(Debug, Clone, Default)]
pub struct BackfillReport {
    /// Orders read from the write model.
    pub orders: u64,
    /// Rows, documents and keys changed in each read model (the rest were
    /// already at that version or newer).
    pub summary: u64,
    pub search: u64,
    pub status: u64,
    /// The last order done: `--after` resumes from here.
    pub last: Option<Uuid>,
    /// False when stopped by the token before the end.
    pub complete: bool,
    pub elapsed: Duration,
}

impl BackfillReport {
    /// The count of read model `model`.
    fn slot(&mut self, model: &str) -> anyhow::Result<&mut u64> {
        Ok(match model {
            "summary" => &mut self.summary,
            "search" => &mut self.search,
            "status" => &mut self.status,
            other => anyhow::bail!("no count for read model {other}"),
        })
    }
}

/// Walks every order after `after` (all when `None`) in id order, `batch`
/// at a time, and writes its summary into each target. Reading the next
/// batch overlaps writing this one.
pub async fn backfill(
    write: &PgPool,
    targets: &Targets,
    after: Option<Uuid>,
    batch: i64,
    token: &CancellationToken,
) -> anyhow::Result<BackfillReport> {
    backfill_with_progress(write, targets, after, batch, token, &Silent).await
}

/// [`backfill`], reporting the orders done of those to do to `progress`
/// (`orderctl backfill` draws a bar on a terminal).
pub async fn backfill_with_progress(
    write: &PgPool,
    targets: &Targets,
    after: Option<Uuid>,
    batch: i64,
    token: &CancellationToken,
    progress: &dyn Progress,
) -> anyhow::Result<BackfillReport> {
    anyhow::ensure!(batch >= 1, "batch must be at least 1");
    let started = Instant::now();
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE id > $1")
        .bind(after.unwrap_or(Uuid::nil()))
        .fetch_one(write)
        .await
        .context("counting the orders to backfill")?;
    progress.phase("backfill", u64::try_from(total).unwrap_or(0));
    let stores = targets.stores();
    let mut report = BackfillReport {
        last: after,
        ..BackfillReport::default()
    };
    let mut last_log = Instant::now();
    let mut next = tokio::spawn(read_batch(write.clone(), after, batch));
    loop {
        let summaries = next.await.context("reading the write model")??;
        let Some(last) = summaries.iter().map(|s| s.order_id).max() else {
            report.complete = true;
            break;
        };
        next = tokio::spawn(read_batch(write.clone(), Some(last), batch));
        // Every store's write of this batch at once.
        let written = futures::future::try_join_all(stores.iter().map(|store| {
            let summaries = &summaries;
            async move {
                let n = store.backfill(summaries).await?;
                anyhow::Ok((store.model(), n))
            }
        }))
        .await?;
        report.orders += summaries.len() as u64;
        for (model, n) in written {
            *report.slot(model)? += n;
        }
        report.last = Some(last);
        progress.position(report.orders);
        if last_log.elapsed() >= Duration::from_secs(10) {
            last_log = Instant::now();
            tracing::info!(
                orders = report.orders,
                per_second = (report.orders as f64 / started.elapsed().as_secs_f64()).round(),
                after = %last,
                "orderctl.backfill progress"
            );
        }
        if token.is_cancelled() {
            next.abort();
            break;
        }
    }
    report.elapsed = started.elapsed();
    progress.finish(&format!("{} orders", report.orders));
    Ok(report)
}

/// The next `batch` order ids after `after`, in id order. `id > $1` with no
/// `IS NULL` branch, so every batch is an index range scan.
pub(crate) async fn next_ids(
    write: &PgPool,
    after: Option<Uuid>,
    batch: i64,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("SELECT id FROM orders WHERE id > $1 ORDER BY id LIMIT $2")
        // The nil UUID sorts first; no order has it.
        .bind(after.unwrap_or(Uuid::nil()))
        .bind(batch)
        .fetch_all(write)
        .await
}

/// The next `batch` orders after `after`, summarised from the write model.
async fn read_batch(
    write: PgPool,
    after: Option<Uuid>,
    batch: i64,
) -> anyhow::Result<Vec<OrderSummary>> {
    let ids = next_ids(&write, after, batch).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(orderflow_writemodel::readback::summaries(&write, Some(&ids)).await?)
}
