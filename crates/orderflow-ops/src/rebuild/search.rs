//! `orderctl rebuild search`: a new search index filled beside the live one,
//! from the write model or by replay from Kafka, then swapped in under the
//! alias.
//!
//! For what reconcile cannot repair in place (a document ahead of the write
//! model), a mapping change, or a corrupted index. Readers and the live
//! projector use the alias throughout, so nothing stops; the new index
//! `<alias>_v<N+1>` is filled with refresh off and the alias moves to it in
//! one atomic step. Every write is guarded by the order version (external
//! versioning), so no pass can move a document back.
//!
//! From the write model: the orders whose row changed since the fill began
//! (`orders.updated_at`, with a minute's margin for transactions in flight)
//! are written into the new index again before the swap, and those changed
//! since that second pass once more through the alias after it. What
//! readers see in the live index stands still (its refresh off) from before
//! the second pass until the swap: the second pass reads the write model
//! after that moment, so the copy holds at least what readers could see; a
//! change the live projector made visible after the second pass read its
//! order would otherwise go back or vanish for readers at the swap (a
//! second pass or swap that fails turns the refresh back on). The
//! projector may briefly hold an event whose earlier version the new index
//! does not have yet; the last pass releases it.
//!
//! From Kafka: the replay ([`super::replay`]) with its own consumer group
//! and inbox scope ([`SCOPE`]) reads to where the live projector has
//! committed. Then what readers see in the live index is made to stand
//! still: its refresh is turned off, so whatever the live projector writes
//! from now on stays invisible there (it goes on writing and reading its
//! own writes, which a real-time get sees; it is never stopped or refused).
//! The replay reads on to the high watermarks taken after that moment
//! (everything readers can see in the live index came from below them),
//! the copy is refreshed and checked (no event held behind a gap, at least
//! as many documents as readers see in the live index) and only then does
//! the alias move, in one atomic step. Last, the replay reads on to the
//! high watermarks taken after the swap, so what the live projector wrote
//! into the old index in between (never visible) reaches the copy too; an
//! event of the live projector's that needs one of those first is held by
//! it for that moment and then applied. A check that fails turns the live
//! index's refresh back on and leaves the alias alone.
//!
//! The alias cannot be swapped away from an index the engine refuses
//! writes to (its write blocks also refuse alias changes), and a refused
//! write would be dead-lettered by the live projector: standing still is
//! what readers need, so that is what the swap arranges.
//!
//! Resumable: the half-filled index stays behind when a rebuild dies, with
//! its source and fill start in its mapping's `_meta`; the next run from the
//! same source carries on, from the index's last order id (write model) or
//! the replay group's committed offsets (Kafka), and turns the live
//! index's refresh back on if the dead run left it off.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use elasticsearch::Elasticsearch;
use orderflow_readstore::search::{SearchProjection, index};
use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::progress::{Progress, Silent};
use super::replay::high_watermarks;
use super::{KafkaSource, Source};
use crate::backfill::{BackfillReport, Targets, backfill_with_progress};

/// The replay's inbox scope (its consumer group is `<live group>.rebuild`).
pub const SCOPE: &str = "search-projector.rebuild";

/// The progress phase of the last pass, after the alias moved: a replay's
/// last events, or the orders the write model changed since the second pass.
pub const AFTER_SWAP: &str = "after swap";

/// The progress phase of a write-model rebuild's second pass, before the
/// swap: the orders changed while the fill ran.
pub const CHANGED_DURING_FILL: &str = "changed during fill";

/// What a rebuild did.
#[derive(Debug, Clone, Default)]
pub struct RebuildReport {
    /// `write-model` or `kafka`.
    pub source: String,
    /// The indices the alias pointed at before.
    pub from: Vec<String>,
    /// The index it points at now.
    pub to: String,
    /// Whether `to` was left by an earlier, unfinished rebuild.
    pub resumed: bool,
    /// The fill of the new index from the write model.
    pub fill: BackfillReport,
    /// From Kafka: events the replay read this run, and of those the ones
    /// read while the live index stood still and after the swap.
    pub replayed: u64,
    pub caught_up_still: u64,
    pub caught_up_after_swap: u64,
    /// How long what readers saw in the live index stood still (from the
    /// write model: the second pass and the swap).
    pub still_for: Duration,
    /// Orders changed during the fill, written before the swap, and orders
    /// changed after that, written after it: (orders, documents changed).
    pub before_swap: (u64, u64),
    pub after_swap: (u64, u64),
    /// Whether the old indices were deleted.
    pub deleted_old: bool,
    pub elapsed: Duration,
}

impl RebuildReport {
    /// Orders (write model) or events (Kafka) per second over the rebuild.
    pub fn rate(&self) -> f64 {
        let done = if self.source == "kafka" {
            self.replayed
        } else {
            self.fill.orders
        };
        done as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }
}

/// The index a search rebuild fills and swaps in.
#[derive(Debug, Clone)]
pub struct SearchRebuild {
    pub client: Elasticsearch,
    pub alias: String,
    /// Keep the old index after the swap (delete it by hand later).
    pub keep_old: bool,
    /// Orders (or replayed events) per batch.
    pub batch: i64,
}

/// The version number of `index` if it is `<alias>_v<N>`.
fn generation(alias: &str, index: &str) -> Option<u32> {
    index.strip_prefix(alias)?.strip_prefix("_v")?.parse().ok()
}

/// Rebuilds the index behind `alias` from the write model.
pub async fn rebuild_search(
    write: &PgPool,
    client: &Elasticsearch,
    alias: &str,
    batch: i64,
    keep_old: bool,
    token: &CancellationToken,
) -> anyhow::Result<RebuildReport> {
    let target = SearchRebuild {
        client: client.clone(),
        alias: alias.to_owned(),
        keep_old,
        batch,
    };
    // The inbox is used only by a replay.
    rebuild_search_from(write, write, &target, &Source::WriteModel, &Silent, token).await
}

/// Rebuilds the index behind `target.alias` from `source`; `read` holds the
/// replay's inbox scope.
pub async fn rebuild_search_from(
    write: &PgPool,
    read: &PgPool,
    target: &SearchRebuild,
    source: &Source,
    progress: &dyn Progress,
    token: &CancellationToken,
) -> anyhow::Result<RebuildReport> {
    let started = Instant::now();
    let (client, alias) = (&target.client, target.alias.as_str());
    let from = index::behind(client, alias).await?;
    let current = from
        .iter()
        .filter_map(|i| generation(alias, i))
        .max()
        .unwrap_or(0);
    let to = format!("{alias}_v{}", current + 1);
    let resumed = index::exists(client, &to).await?;
    let began = if resumed {
        carry_on(client, &from, &to, source).await?
    } else {
        let began = checkpoint(write).await?;
        index::create(client, &to, None).await?;
        index::set_rebuild_meta(
            client,
            &to,
            &json!({"source": source.name(), "began": began.format(&Rfc3339)?}),
        )
        .await?;
        began
    };
    // No refresh while filling: a bulk load's cost is mostly refreshes.
    index::set_refresh(client, &to, "-1").await?;
    let mut report = RebuildReport {
        source: source.name().to_owned(),
        from,
        to,
        resumed,
        deleted_old: !target.keep_old,
        ..RebuildReport::default()
    };
    match source {
        Source::WriteModel => {
            from_write_model(write, target, began, progress, token, &mut report).await?;
        }
        Source::Kafka(kafka) => {
            let job = super::Job::new(write, read, target.batch, progress, token);
            from_kafka(&job, target, kafka, &mut report).await?;
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Picks up the index a stopped rebuild left: refuses one from another
/// source, turns on the refresh it left off on the live index, and returns
/// when its fill began.
async fn carry_on(
    client: &Elasticsearch,
    live: &[String],
    to: &str,
    source: &Source,
) -> anyhow::Result<OffsetDateTime> {
    let meta = index::rebuild_meta(client, to).await?;
    // An index left by an earlier release has no record: a write-model fill.
    let left_by = meta["source"].as_str().unwrap_or("write-model");
    anyhow::ensure!(
        left_by == source.name(),
        "a search rebuild from {left_by} stopped before its swap and left {to}; \
         run it again with that source, or `orderctl rebuild search --discard` first"
    );
    tracing::info!(
        index = to,
        "orderctl.rebuild resuming into the index a stopped rebuild left"
    );
    for old in live {
        if still(client, old).await? {
            tracing::warn!(
                index = old,
                "orderctl.rebuild turning on the live index's refresh a stopped rebuild left off"
            );
            index::set_refresh(client, old, index::REFRESH_INTERVAL).await?;
        }
    }
    Ok(match meta["began"].as_str() {
        Some(began) => OffsetDateTime::parse(began, &Rfc3339)?,
        // Unknown: every order counts as changed during the fill.
        None => OffsetDateTime::UNIX_EPOCH,
    })
}

/// Drops what a stopped search rebuild left: the half-filled index, the
/// replay's inbox scope and consumer group, the live index's refresh off.
pub async fn discard_search(
    read: &PgPool,
    client: &Elasticsearch,
    alias: &str,
    kafka: Option<&KafkaSource>,
) -> anyhow::Result<()> {
    let live = index::behind(client, alias).await?;
    for old in &live {
        if still(client, old).await? {
            index::set_refresh(client, old, index::REFRESH_INTERVAL).await?;
        }
    }
    let current = live
        .iter()
        .filter_map(|i| generation(alias, i))
        .max()
        .unwrap_or(0);
    let next = format!("{alias}_v{}", current + 1);
    if index::exists(client, &next).await? {
        index::delete(client, &next).await?;
    }
    super::replay::discard_scope(read, SCOPE, kafka).await
}

async fn from_write_model(
    write: &PgPool,
    target: &SearchRebuild,
    fill_began: OffsetDateTime,
    progress: &dyn Progress,
    token: &CancellationToken,
    report: &mut RebuildReport,
) -> anyhow::Result<()> {
    let (client, alias, to) = (&target.client, target.alias.as_str(), report.to.clone());
    let into_new = SearchProjection {
        client: client.clone(),
        alias: to.clone(),
    };
    // The fill writes in id order: a stopped one resumes after its last.
    let after = if report.resumed {
        index::last_order(client, &to)
            .await?
            .map(|id| id.parse::<Uuid>())
            .transpose()?
    } else {
        None
    };
    let targets = Targets {
        search: Some(into_new.clone()),
        ..Targets::default()
    };
    report.fill = backfill_with_progress(write, &targets, after, target.batch, token, progress)
        .await
        .with_context(|| format!("filling {to}"))?;
    anyhow::ensure!(
        report.fill.complete,
        "rebuild stopped while filling {to}; run it again to carry on"
    );
    index::set_refresh(client, &to, index::REFRESH_INTERVAL).await?;

    // Readers' view of the live index stands still before the second pass
    // reads the write model, so the copy holds at least that view.
    let second_pass = async {
        let second_began = checkpoint(write).await?;
        let written = refill(
            write,
            &into_new,
            fill_began,
            target.batch,
            (CHANGED_DURING_FILL, progress),
        )
        .await?;
        index::refresh(client, &to).await?;
        Ok((second_began, written))
    };
    let ((second_began, before_swap), still_for) =
        swap_standing_still(client, alias, &report.from, &to, second_pass).await?;
    (report.before_swap, report.still_for) = (before_swap, still_for);

    let through_alias = SearchProjection {
        client: client.clone(),
        alias: alias.to_owned(),
    };
    report.after_swap = refill(
        write,
        &through_alias,
        second_began,
        target.batch,
        (AFTER_SWAP, progress),
    )
    .await
    .context("catching up after the swap; `orderctl backfill --only search` finishes it")?;
    retire_old(target, &report.from).await
}

async fn from_kafka(
    job: &super::Job<'_>,
    target: &SearchRebuild,
    kafka: &KafkaSource,
    report: &mut RebuildReport,
) -> anyhow::Result<()> {
    let (client, alias, to) = (&target.client, target.alias.as_str(), report.to.clone());
    let copy = SearchProjection {
        client: client.clone(),
        alias: to.clone(),
    };
    let (mut replay, replayed) = job.replay(kafka, copy, SCOPE).await?;
    let progress = job.progress;
    report.replayed = replayed;
    index::set_refresh(client, &to, index::REFRESH_INTERVAL).await?;

    let caught_up = async {
        // What readers see in the live index came from below these.
        let seen = high_watermarks(kafka).await?;
        let before = replay.position();
        replay.run_until(&seen, &Silent).await?;
        anyhow::ensure!(
            replay.counts.gaps == 0,
            "the replayed copy lacks events the live projector applied ({} held behind a gap); not swapped",
            replay.counts.gaps
        );
        // Readers must find in the copy at least what they found before.
        index::refresh(client, &to).await?;
        let (live, copied) = (
            index::count(client, alias).await?,
            index::count(client, &to).await?,
        );
        anyhow::ensure!(
            copied >= live,
            "the replayed copy has {copied} documents, the live index {live}; not swapped"
        );
        Ok(replay.position() - before)
    };
    (report.caught_up_still, report.still_for) =
        swap_standing_still(client, alias, &report.from, &to, caught_up).await?;
    // What the live projector wrote into the old index meanwhile.
    let swapped = high_watermarks(kafka).await?;
    let before = replay.position();
    progress.phase(AFTER_SWAP, swapped.values().map(|h| *h as u64).sum());
    replay
        .run_until(&swapped, progress)
        .await
        .context("catching up after the swap; run `orderctl backfill --only search`")?;
    report.caught_up_after_swap = replay.position() - before;
    progress.finish(&format!(
        "{} events after the swap",
        report.caught_up_after_swap
    ));
    retire_old(target, &report.from).await?;
    replay
        .drop_scope()
        .await
        .context("dropping the replay's inbox scope and consumer group")
}

/// Stands readers' view of the live indices `from` still (their refresh
/// off), runs `last` (the copy's last writes and checks), and moves the
/// alias to `to` in one atomic step; when either fails the refresh goes back
/// on and the alias stays. What `last` returned, and how long the view
/// stood still.
async fn swap_standing_still<T>(
    client: &Elasticsearch,
    alias: &str,
    from: &[String],
    to: &str,
    last: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<(T, Duration)> {
    let still_at = Instant::now();
    set_refresh_all(client, from, "-1").await?;
    let swapped = async {
        let done = last.await?;
        index::swap(client, alias, from, to).await?;
        anyhow::Ok(done)
    }
    .await;
    match swapped {
        Ok(done) => {
            let still_for = still_at.elapsed();
            tracing::info!(
                alias,
                ?from,
                to,
                still_ms = still_for.as_millis() as u64,
                "orderctl.rebuild alias swapped"
            );
            Ok((done, still_for))
        }
        Err(err) => {
            set_refresh_all(client, from, index::REFRESH_INTERVAL).await?;
            Err(err)
        }
    }
}

/// Sets the refresh interval of every index in `indices`.
async fn set_refresh_all(
    client: &Elasticsearch,
    indices: &[String],
    interval: &str,
) -> anyhow::Result<()> {
    for index in indices {
        index::set_refresh(client, index, interval).await?;
    }
    Ok(())
}

/// After the swap: the old indices deleted, or kept with their refresh back
/// on (`keep_old`).
async fn retire_old(target: &SearchRebuild, old: &[String]) -> anyhow::Result<()> {
    if target.keep_old {
        set_refresh_all(&target.client, old, index::REFRESH_INTERVAL).await
    } else {
        for index in old {
            index::delete(&target.client, index).await?;
        }
        Ok(())
    }
}

/// Whether `index`'s refresh is off (what a rebuild leaves while it
/// swaps).
async fn still(client: &Elasticsearch, index: &str) -> anyhow::Result<bool> {
    Ok(index::refresh_interval(client, index).await?.as_deref() == Some("-1"))
}

/// A point in write-model time before which every transaction still in
/// flight has begun (a minute's margin: commands take milliseconds).
async fn checkpoint(write: &PgPool) -> sqlx::Result<OffsetDateTime> {
    sqlx::query_scalar("SELECT now() - interval '1 minute'")
        .fetch_one(write)
        .await
}

/// Writes the orders changed since `since` into `projection`, guarded by
/// version, reported to `progress` as phase `phase`: (orders, documents
/// changed).
async fn refill(
    write: &PgPool,
    projection: &SearchProjection,
    since: OffsetDateTime,
    batch: i64,
    (phase, progress): (&str, &dyn Progress),
) -> anyhow::Result<(u64, u64)> {
    let changed = super::summary::changed_since(write, since).await?;
    progress.phase(phase, changed.len() as u64);
    let (mut done, mut written) = (0, 0);
    for chunk in changed.chunks(usize::try_from(batch)?) {
        let summaries = orderflow_writemodel::readback::summaries(write, Some(chunk)).await?;
        written += projection.backfill(&summaries).await?;
        done += chunk.len() as u64;
        progress.position(done);
    }
    progress.finish(&format!(
        "{} orders changed, {written} documents written",
        changed.len()
    ));
    Ok((changed.len() as u64, written))
}
