//! `orderctl rebuild search`: a new search index filled from the write
//! model beside the live one, then swapped in under the alias.
//!
//! For what reconcile cannot repair in place (a document ahead of the write
//! model), a mapping change, or a corrupted index. Readers and the projector
//! use the alias throughout, so nothing stops: the new index `<alias>_v<N+1>`
//! is filled (refresh off), the alias moves to it in one atomic step, and a
//! second, version-guarded pass over the write model catches up with what
//! changed while the first ran (those writes went to the old index). The
//! projector may briefly hold an event whose earlier version the new index
//! does not have yet; the catch-up releases it. A rebuild that stops before
//! the swap leaves its half-filled index behind; running it again picks
//! that index up and carries on (what is already there is skipped by
//! version).

use anyhow::Context as _;
use elasticsearch::Elasticsearch;
use search_projector::{SearchProjection, index};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

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
    /// The fill of the new index, then the catch-up after the swap.
    pub fill: BackfillReport,
    pub catch_up: BackfillReport,
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
    let into_new = Targets {
        search: Some(SearchProjection {
            client: client.clone(),
            alias: to.clone(),
        }),
        ..Targets::default()
    };
    let fill = backfill(write, &into_new, None, batch, token)
        .await
        .with_context(|| format!("filling {to}"))?;
    anyhow::ensure!(
        fill.complete,
        "rebuild stopped while filling {to}; run it again to carry on"
    );
    index::set_refresh(client, &to, "1s").await?;
    client
        .indices()
        .refresh(elasticsearch::indices::IndicesRefreshParts::Index(&[&to]))
        .send()
        .await?;

    index::swap(client, alias, &from, &to).await?;
    tracing::info!(alias, from = ?from, to, "orderctl.rebuild alias swapped");

    let through_alias = Targets {
        search: Some(SearchProjection {
            client: client.clone(),
            alias: alias.to_owned(),
        }),
        ..Targets::default()
    };
    let catch_up = backfill(write, &through_alias, None, batch, token)
        .await
        .context("catching up after the swap")?;
    anyhow::ensure!(
        catch_up.complete,
        "rebuild stopped while catching up; `orderctl backfill --only search` finishes it"
    );
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
        catch_up,
        deleted_old: !keep_old,
    })
}
