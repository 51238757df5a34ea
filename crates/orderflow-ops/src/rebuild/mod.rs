//! `orderctl rebuild`: each read model rebuilt beside the live one and
//! swapped in without downtime (DESIGN.md guarantee 7).
//!
//! - [`summary`]: a shadow `order_summary`, from the write model or by
//!   replay from Kafka, swapped in one transaction;
//! - [`search`]: a new index behind the alias, from the write model or by
//!   replay from Kafka (what readers see in the live index standing still
//!   for the last events);
//! - [`status`]: a new key generation of the Redis cache, from the write
//!   model or by replay, swapped by one pointer key.
//!
//! A replay ([`replay`]) has its own consumer group and inbox scope, so the
//! live projector's inbox never makes it skip an event; both go after the
//! swap. Each rebuild leaves its copy and progress behind when it dies and
//! carries on when run again, and reports its position to a [`Progress`]
//! (a bar on a terminal, plain lines otherwise).

pub mod progress;
pub mod replay;
pub mod search;
pub mod status;
pub mod summary;

use anyhow::Context as _;
use orderflow_projector::Inbox;
use orderflow_readmodel::OrderSummary;
use rdkafka::ClientConfig;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::backfill::next_ids;

pub use progress::Progress;
pub use search::{
    RebuildReport, SearchRebuild, discard_search, rebuild_search, rebuild_search_from,
};
pub use status::{StatusRebuildReport, rebuild_status};
pub use summary::{SummaryRebuildReport, rebuild_summary};

/// Where a rebuild reads the orders from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The write model, the truth: one read per order, fastest.
    WriteModel,
    /// The events topic from its earliest offset, through the projection.
    Kafka(KafkaSource),
}

/// The events topic to replay and the live projector to catch up with.
#[derive(Debug, Clone)]
pub struct KafkaSource {
    pub config: ClientConfig,
    pub topic: String,
    /// The live projector's consumer group: the copy is swapped in only
    /// once it has read at least as far.
    pub live_group: String,
}

impl KafkaSource {
    /// The replay's consumer group: its committed offsets are the replay's
    /// progress, one group per live group (and so per topic).
    pub fn rebuild_group(&self) -> String {
        format!("{}.rebuild", self.live_group)
    }
}

impl Source {
    /// The topic to replay, when the source is Kafka.
    pub fn kafka(&self) -> Option<&KafkaSource> {
        match self {
            Self::WriteModel => None,
            Self::Kafka(kafka) => Some(kafka),
        }
    }

    /// As the command line and the shadow's record name it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::WriteModel => "write-model",
            Self::Kafka(_) => "kafka",
        }
    }
}

/// What every rebuild runs with, whatever its store: the write model, the
/// read database (holding a replay's inbox scope), the batch size, where it
/// reports, and what stops it. The shared skeleton's steps (a fill from the
/// write model that resumes, a replay caught up with the live projector)
/// are its methods; each store's module adds only its copy and its swap.
#[derive(Clone, Copy)]
pub(crate) struct Job<'a> {
    pub write: &'a PgPool,
    pub read: &'a PgPool,
    pub batch: i64,
    pub progress: &'a dyn Progress,
    pub token: &'a CancellationToken,
}

impl<'a> Job<'a> {
    pub(crate) fn new(
        write: &'a PgPool,
        read: &'a PgPool,
        batch: i64,
        progress: &'a dyn Progress,
        token: &'a CancellationToken,
    ) -> Self {
        Self {
            write,
            read,
            batch,
            progress,
            token,
        }
    }

    /// [`fill`] from the write model after `after` (`done` orders filled
    /// by an earlier run), each batch handed to `write_batch`.
    async fn fill<F, Fut>(
        &self,
        after: Option<Uuid>,
        done: u64,
        write_batch: F,
    ) -> anyhow::Result<u64>
    where
        F: FnMut(Vec<OrderSummary>, Uuid) -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        fill(
            self.write,
            after,
            done,
            self.batch,
            self.progress,
            self.token,
            write_batch,
        )
        .await
    }

    /// The replay of `kafka` into `projection` with inbox scope `name`, run
    /// until it has caught up with the live projector: the replay, and the
    /// events it read this run.
    pub(crate) async fn replay<P: orderflow_projector::Projection>(
        &self,
        kafka: &KafkaSource,
        projection: P,
        name: &'static str,
    ) -> anyhow::Result<(replay::Replay<P>, u64)> {
        replay::Replay::caught_up(
            kafka,
            projection,
            scope(name, self.read),
            self.batch,
            self.progress,
            self.token,
        )
        .await
    }
}

/// The inbox scope `name` of a replay (its rows in the read database's
/// inbox, apart from the live projector's).
pub(crate) fn scope(name: &'static str, read: &PgPool) -> Inbox {
    Inbox {
        consumer: name,
        pool: read.clone(),
        enabled: true,
        recorded: None,
    }
}

/// Walks the write model's orders after `after` in id order, `batch` at a
/// time, handing each batch's summaries (and its last id) to `write`;
/// `done` orders were filled by an earlier run. Stops between batches on
/// `token`. Returns the orders this run filled.
async fn fill<F, Fut>(
    write: &PgPool,
    mut after: Option<Uuid>,
    mut done: u64,
    batch: i64,
    progress: &dyn Progress,
    token: &CancellationToken,
    mut write_batch: F,
) -> anyhow::Result<u64>
where
    F: FnMut(Vec<OrderSummary>, Uuid) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(write)
        .await
        .context("counting orders in the write database (WRITE_DATABASE_URL)")?;
    progress.phase("fill", u64::try_from(total)?.max(done));
    progress.position(done);
    let mut filled = 0;
    loop {
        anyhow::ensure!(
            !token.is_cancelled(),
            "rebuild stopped while filling; run it again to carry on"
        );
        let ids = next_ids(write, after, batch).await?;
        let Some(last) = ids.last().copied() else {
            break;
        };
        let summaries = orderflow_writemodel::readback::summaries(write, Some(&ids)).await?;
        write_batch(summaries, last).await?;
        filled += ids.len() as u64;
        done += ids.len() as u64;
        after = Some(last);
        progress.position(done);
    }
    progress.finish(&format!("filled {filled} orders"));
    Ok(filled)
}
