//! `orderctl rebuild search`: a new search index filled from the write
//! model beside the live one, then swapped in under the alias.
//!
//! For what reconcile cannot repair in place (a document ahead of the write
//! model), a mapping change, or a corrupted index. Readers and the projector
//! use the alias throughout, so nothing stops: the new index `<alias>_v<N+1>`
//! is filled (refresh off); the orders whose row changed since the fill
//! began (`orders.updated_at`, with a minute's margin for transactions in
//! flight) are written into it again; the alias moves to it in one atomic
//! step; and the orders changed since that second pass are written once more
//! through the alias. Every write is guarded by version. The projector may
//! briefly hold an event whose earlier version the new index does not have
//! yet; the last pass releases it. A rebuild that stops before the swap
//! leaves its half-filled index behind; running it again picks that index
//! up and carries on (what is already there is skipped by version).

use anyhow::Context as _;
use elasticsearch::Elasticsearch;
use orderflow_readstore::search::{SearchProjection, index};
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::backfill::{BackfillReport, Targets, backfill};

/// What a rebuild did.
#[derive(Debug, Clone)]
pub struct RebuildReport {
    /// The indices the alias pointed at before.
    pub from: Vec<String>,
    /// The index it points at now.
    pub to: String,
    /// Whether `to` was left by an earlier, unfinished rebuild.
    pub resumed: bool,
    /// The fill of the new index.
    pub fill: BackfillReport,
    /// Orders changed during the fill, written before the swap, and orders
    /// changed after that, written after it: (orders, documents changed).
    pub before_swap: (u64, u64),
    pub after_swap: (u64, u64),
    /// Whether the old indices were deleted.
    pub deleted_old: bool,
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
    let from = index::behind(client, alias).await?;
    let current = from
        .iter()
        .filter_map(|i| generation(alias, i))
        .max()
        .unwrap_or(0);
    let to = format!("{alias}_v{}", current + 1);
    let resumed = index::exists(client, &to).await?;
    if resumed {
        tracing::info!(
            index = to,
            "orderctl.rebuild resuming into the index a stopped rebuild left"
        );
    } else {
        index::create(client, &to, None).await?;
    }
    // No refresh while filling: a bulk load's cost is mostly refreshes.
    index::set_refresh(client, &to, "-1").await?;
    let into_new = SearchProjection {
        client: client.clone(),
        alias: to.clone(),
    };
    let fill_began = checkpoint(write).await?;
    let targets = Targets {
        search: Some(into_new.clone()),
        ..Targets::default()
    };
    let fill = backfill(write, &targets, None, batch, token)
        .await
        .with_context(|| format!("filling {to}"))?;
    anyhow::ensure!(
        fill.complete,
        "rebuild stopped while filling {to}; run it again to carry on"
    );
    index::set_refresh(client, &to, index::REFRESH_INTERVAL).await?;
    let second_began = checkpoint(write).await?;
    let before_swap = refill(write, &into_new, fill_began, batch).await?;
    client
        .indices()
        .refresh(elasticsearch::indices::IndicesRefreshParts::Index(&[&to]))
        .send()
        .await?;

    index::swap(client, alias, &from, &to).await?;
    tracing::info!(alias, from = ?from, to, "orderctl.rebuild alias swapped");

    let through_alias = SearchProjection {
        client: client.clone(),
        alias: alias.to_owned(),
    };
    let after_swap = refill(write, &through_alias, second_began, batch)
        .await
        .context("catching up after the swap; `orderctl backfill --only search` finishes it")?;
    if !keep_old {
        for old in &from {
            index::delete(client, old).await?;
        }
    }
    Ok(RebuildReport {
        from,
        to,
        resumed,
        fill,
        before_swap,
        after_swap,
        deleted_old: !keep_old,
    })
}

/// A point in write-model time before which every transaction still in
/// flight has begun (a minute's margin: commands take milliseconds).
async fn checkpoint(write: &PgPool) -> sqlx::Result<OffsetDateTime> {
    sqlx::query_scalar("SELECT now() - interval '1 minute'")
        .fetch_one(write)
        .await
}

/// Writes the orders changed since `since` into `projection`, guarded by
/// version: (orders, documents changed).
async fn refill(
    write: &PgPool,
    projection: &SearchProjection,
    since: OffsetDateTime,
    batch: i64,
) -> anyhow::Result<(u64, u64)> {
    let changed: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM orders WHERE updated_at >= $1 ORDER BY id")
            .bind(since)
            .fetch_all(write)
            .await?;
    let mut written = 0;
    for chunk in changed.chunks(usize::try_from(batch)?) {
        let summaries = orderflow_writemodel::readback::summaries(write, Some(chunk)).await?;
        written += projection.backfill(&summaries).await?;
    }
    Ok((changed.len() as u64, written))
}
