//! How the commands reach the stores from their settings: pools, migrated
//! where a command needs the schema, the read-model targets of a fill or a
//! check, and the Ctrl-C token long jobs stop on.

use anyhow::Context as _;
use orderflow_ops::backfill::Targets;
use orderflow_service::stores::postgres::{self, WriteDbArgs};
use tokio_util::sync::CancellationToken;

use crate::cli::{FillArgs, ReadModel};

/// A token cancelled by Ctrl-C: a backfill stops between batches, with the
/// place to resume.
pub fn interrupt_token() -> CancellationToken {
    let token = CancellationToken::new();
    tokio::spawn({
        let token = token.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::warn!("orderctl interrupted; stopping after this batch");
                token.cancel();
            }
        }
    });
    token
}

/// A write pool with the write database's migrations applied.
pub async fn migrated_write_pool(write_db: &WriteDbArgs) -> anyhow::Result<sqlx::PgPool> {
    let pool = postgres::pool(&write_db.url, write_db.max_connections.max(4), "orderctl")?;
    orderflow_topology::migrate_write(&pool)
        .await
        .context("applying write-database migrations")?;
    Ok(pool)
}

/// The read models `fill` names, migrated or created where needed.
pub async fn targets(fill: &FillArgs) -> anyhow::Result<Targets> {
    let mut targets = Targets::default();
    if fill.only.contains(&ReadModel::Summary) {
        let read = postgres::pool(&fill.read_db.url, 4, "orderctl")?;
        orderflow_topology::migrate_read(&read)
            .await
            .context("applying read-database migrations")?;
        targets.summary = Some(read);
    }
    if fill.only.contains(&ReadModel::Search) {
        let client = fill.search.client()?;
        orderflow_readstore::search::index::ensure(&client, &fill.search.alias).await?;
        targets.search = Some(orderflow_readstore::search::SearchProjection {
            client,
            alias: fill.search.alias.clone(),
        });
    }
    if fill.only.contains(&ReadModel::Status) {
        targets.status = Some(orderflow_readstore::status::StatusProjection::new(
            fill.redis.client()?,
            fill.redis.key_prefix.clone(),
        ));
    }
    Ok(targets)
}
