//! `orderctl rebuild status`: a new key generation of the Redis status
//! cache, filled from the write model or by replay from Kafka, swapped in
//! by one pointer key that the status projector and the query API follow.
//!
//! While the rebuild runs, the live projector's script also writes every
//! state it applies into the new generation (forward only), so nothing
//! applied during the fill is lost. Before the swap the rebuild compares
//! the two generations and copies forward whatever the live one still has
//! at a newer version (a state applied just before the rebuild began, or,
//! from Kafka, beyond what the replay read); after that the dual write
//! keeps the copy at least as new, and the pointer moves in one atomic
//! script. From Kafka the swap waits until the replay has read as far as
//! the live projector's committed offsets. The old generation is deleted
//! afterwards, as are the replay's inbox scope and consumer group.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use orderflow_readstore::status::StatusProjection;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::progress::Progress;
use super::{Job, Source};

/// The replay's inbox scope (its consumer group is `<live group>.rebuild`).
pub const SCOPE: &str = "status-projector.rebuild";

/// What a status rebuild did.
#[derive(Debug, Clone, Default)]
pub struct StatusRebuildReport {
    pub source: String,
    pub resumed: bool,
    /// The generation that was live, and the one that is now.
    pub from: u64,
    pub to: u64,
    /// Orders (write model) or events (Kafka) written into the copy.
    pub filled: u64,
    /// Entries copied forward from the live generation before the swap.
    pub caught_up: u64,
    /// Keys of the old generation deleted.
    pub deleted: u64,
    pub elapsed: Duration,
}

impl StatusRebuildReport {
    /// Orders (or events) per second over the whole rebuild.
    pub fn rate(&self) -> f64 {
        self.filled as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }
}

/// Rebuilds the status cache from `source`; `read` holds the inbox.
pub async fn rebuild_status(
    write: &PgPool,
    read: &PgPool,
    status: &StatusProjection,
    source: &Source,
    batch: i64,
    progress: &dyn Progress,
    token: &CancellationToken,
) -> anyhow::Result<StatusRebuildReport> {
    let started = Instant::now();
    let (generation, resumed) = status.begin_rebuild(source.name()).await?;
    let copy = status.clone().pinned(generation);
    if resumed {
        tracing::info!(
            generation,
            "orderctl.rebuild resuming the status generation a stopped rebuild left"
        );
    }
    let mut report = StatusRebuildReport {
        source: source.name().to_owned(),
        resumed,
        to: generation,
        ..StatusRebuildReport::default()
    };
    let job = Job::new(write, read, batch, progress, token);
    let replay = match source {
        Source::WriteModel => {
            fill_from_write_model(&job, status, &copy, &mut report).await?;
            None
        }
        Source::Kafka(kafka) => {
            let (replay, filled) = job.replay(kafka, copy, SCOPE).await?;
            report.filled = filled;
            Some(replay)
        }
    };
    let live = status.generation().await?;
    report.from = live;
    let behind = status.behind(live, generation).await?;
    report.caught_up = status.copy_forward(generation, &behind).await?;
    anyhow::ensure!(
        status.swap_to(generation).await?,
        "generation {generation} is no longer the one being rebuilt (another rebuild?); not swapped"
    );
    tracing::info!(
        from = live,
        to = generation,
        "orderctl.rebuild status pointer swapped"
    );
    report.deleted = status
        .delete_generation(live)
        .await
        .context("deleting the old generation")?;
    if let Some(replay) = replay {
        replay
            .drop_scope()
            .await
            .context("dropping the replay's inbox scope and consumer group")?;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

async fn fill_from_write_model(
    job: &Job<'_>,
    status: &StatusProjection,
    copy: &StatusProjection,
    report: &mut StatusRebuildReport,
) -> anyhow::Result<()> {
    let after = status.fill_position().await?;
    let done: u64 = match after {
        Some(after) => u64::try_from(
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM orders WHERE id <= $1")
                .bind(after)
                .fetch_one(job.write)
                .await?,
        )?,
        None => 0,
    };
    report.filled = job
        .fill(after, done, |summaries, last| async move {
            copy.backfill(&summaries).await?;
            status.set_fill_position(last).await
        })
        .await?;
    Ok(())
}
