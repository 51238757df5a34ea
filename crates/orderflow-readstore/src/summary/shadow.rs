//! The shadow `order_summary` a rebuild fills beside the live one, and the
//! one transaction that swaps it in.
//!
//! The shadow is `rebuild.order_summary`, created `LIKE` the live table
//! `INCLUDING ALL`, so it has whatever columns, defaults, constraints and
//! indexes the read migrations have given the live one by then. It lives in
//! a schema of its own under the same name, so the projection and backfill
//! code runs on it unchanged through a pool whose `search_path` puts
//! `rebuild` first (the inbox and every other runtime table still resolve
//! to `public`). The table comment records the rebuild's source and the
//! write-model instant its fill began, so a rebuild killed at any point is
//! picked up by the next run.
//!
//! The swap ([`SwapTx`]) locks the live table `IN EXCLUSIVE MODE`: readers
//! go on reading it, the live projector waits. Under that lock the rebuild
//! brings every row the live projector has moved ahead of the shadow up to
//! date ([`SwapTx::behind`]), then the live table is dropped and the shadow
//! moved to `public` under its name, its indexes renamed to the live ones'
//! names and the live table's grants and comment re-applied; all in the one
//! transaction. Readers wait only for the `ACCESS EXCLUSIVE` of the last
//! statements (milliseconds) and then read the new table: never an error,
//! never an empty table, never an older version than they saw before.

use std::collections::HashMap;

use orderflow_readmodel::OrderSummary;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use super::SummaryProjection;
use super::projection::upsert;

/// The schema the shadow table lives in.
pub const SCHEMA: &str = "rebuild";

/// What the shadow's table comment records about its rebuild.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowMeta {
    /// `write-model` or `kafka`.
    pub source: String,
    /// For a write-model fill: the instant before which every transaction
    /// still in flight at its start had begun; orders changed since are
    /// written again before the swap.
    #[serde(with = "time::serde::rfc3339")]
    pub began: OffsetDateTime,
}

/// An open shadow table: new or left by a rebuild that stopped.
#[derive(Debug, Clone)]
pub struct Shadow {
    /// The read database with the default `search_path` (the live table).
    pub live: PgPool,
    /// The read database with `rebuild` first on the `search_path`.
    pub pool: PgPool,
    pub meta: ShadowMeta,
    /// Whether an earlier rebuild left it.
    pub resumed: bool,
}

impl Shadow {
    /// Opens the shadow, creating it `LIKE` the live table when there is
    /// none. A shadow left by a rebuild from another source is refused: its
    /// rows and progress belong to that source.
    pub async fn open(live: &PgPool, source: &str) -> anyhow::Result<Self> {
        let options = (*live.connect_options())
            .clone()
            .options([("search_path", format!("{SCHEMA},public"))]);
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        let existing: Option<Option<String>> = sqlx::query_scalar(
            "SELECT obj_description(c.oid, 'pg_class') FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = 'order_summary'",
        )
        .bind(SCHEMA)
        .fetch_optional(live)
        .await?;
        if let Some(comment) = existing {
            let meta: ShadowMeta = serde_json::from_str(comment.as_deref().unwrap_or("{}"))
                .map_err(|e| {
                    anyhow::anyhow!(
                        "{SCHEMA}.order_summary exists but is not a rebuild's shadow ({e}); drop it"
                    )
                })?;
            anyhow::ensure!(
                meta.source == source,
                "a rebuild from {} stopped before its swap and left {SCHEMA}.order_summary; \
                 run it again with that source, or `orderctl rebuild summary --discard` first",
                meta.source
            );
            return Ok(Self {
                live: live.clone(),
                pool,
                meta,
                resumed: true,
            });
        }
        let began: OffsetDateTime = sqlx::query_scalar("SELECT now() - interval '1 minute'")
            .fetch_one(live)
            .await?;
        let meta = ShadowMeta {
            source: source.to_owned(),
            began,
        };
        let mut tx = live.begin().await?;
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!(
            "CREATE TABLE {SCHEMA}.order_summary (LIKE public.order_summary INCLUDING ALL)"
        ))
        .execute(&mut *tx)
        .await?;
        // COMMENT takes no parameters; the JSON is quoted as a literal.
        let quoted: String = sqlx::query_scalar("SELECT quote_literal($1)")
            .bind(serde_json::to_string(&meta)?)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(&format!(
            "COMMENT ON TABLE {SCHEMA}.order_summary IS {quoted}"
        ))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Self {
            live: live.clone(),
            pool,
            meta,
            resumed: false,
        })
    }

    /// Drops a shadow (and its schema) left by a stopped rebuild, if any.
    pub async fn discard(live: &PgPool) -> sqlx::Result<()> {
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            .execute(live)
            .await?;
        Ok(())
    }

    /// The summary projection, writing the shadow.
    pub fn projection(&self) -> SummaryProjection {
        SummaryProjection {
            pool: self.pool.clone(),
        }
    }

    /// The last order id in the shadow: where a write-model fill resumes.
    pub async fn last_id(&self) -> sqlx::Result<Option<Uuid>> {
        sqlx::query_scalar(&format!(
            "SELECT order_id FROM {SCHEMA}.order_summary ORDER BY order_id DESC LIMIT 1"
        ))
        .fetch_optional(&self.live)
        .await
    }

    /// Rows in the shadow.
    pub async fn rows(&self) -> sqlx::Result<i64> {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {SCHEMA}.order_summary"))
            .fetch_one(&self.live)
            .await
    }

    /// Writes summaries into the shadow, each only over an older version.
    pub async fn backfill(&self, summaries: &[OrderSummary]) -> sqlx::Result<u64> {
        super::maintenance::backfill(&self.pool, summaries).await
    }

    /// Fresh statistics for the planner before the table goes live.
    pub async fn analyze(&self) -> sqlx::Result<()> {
        sqlx::query(&format!("ANALYZE {SCHEMA}.order_summary"))
            .execute(&self.live)
            .await?;
        Ok(())
    }

    /// Begins the swap: a transaction holding the live table in `EXCLUSIVE`
    /// mode (readers go on, the live projector waits), waiting at most
    /// `lock_timeout` for the lock.
    pub async fn begin_swap(&self, lock_timeout: std::time::Duration) -> sqlx::Result<SwapTx> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "SET LOCAL lock_timeout = '{}ms'",
            lock_timeout.as_millis()
        ))
        .execute(&mut *tx)
        .await?;
        sqlx::query("LOCK TABLE public.order_summary IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        Ok(SwapTx { tx })
    }
}

/// The swap in progress: the live table locked against writes.
#[derive(Debug)]
pub struct SwapTx {
    tx: Transaction<'static, Postgres>,
}

impl SwapTx {
    /// Orders whose live row is newer than the shadow's, or missing from
    /// the shadow: `(order, live version, shadow version)`.
    pub async fn behind(&mut self) -> sqlx::Result<Vec<(Uuid, i64, Option<i64>)>> {
        sqlx::query_as(&format!(
            "SELECT l.order_id, l.version, s.version FROM public.order_summary l \
             LEFT JOIN {SCHEMA}.order_summary s USING (order_id) \
             WHERE s.order_id IS NULL OR s.version < l.version ORDER BY l.order_id"
        ))
        .fetch_all(&mut *self.tx)
        .await
    }

    /// Writes summaries into the shadow inside the swap, each only over an
    /// older version.
    pub async fn backfill(&mut self, summaries: &[OrderSummary]) -> sqlx::Result<u64> {
        let mut rows: Vec<&OrderSummary> = summaries.iter().collect();
        rows.sort_by_key(|s| s.order_id);
        upsert(&mut *self.tx, &rows).await
    }

    /// Gives up the swap: the live table stays, the shadow too.
    pub async fn abandon(self) -> sqlx::Result<()> {
        self.tx.rollback().await
    }

    /// Puts the shadow in the live table's place and commits: the live
    /// table's grants, owner-independent, and comment carried over, its
    /// index names kept, the `rebuild` schema dropped.
    pub async fn commit(mut self) -> sqlx::Result<()> {
        let tx = &mut self.tx;
        let grants: Vec<String> = sqlx::query_scalar(include_str!("sql/shadow_grants.sql"))
            .fetch_all(&mut **tx)
            .await?;
        let comment: Option<String> = sqlx::query_scalar(
            "SELECT quote_literal(obj_description('public.order_summary'::regclass, 'pg_class'))",
        )
        .fetch_one(&mut **tx)
        .await?;
        let live_indexes = indexes(tx, "public").await?;
        let shadow_indexes = indexes(tx, SCHEMA).await?;
        sqlx::query("DROP TABLE public.order_summary")
            .execute(&mut **tx)
            .await?;
        sqlx::query(&format!(
            "ALTER TABLE {SCHEMA}.order_summary SET SCHEMA public"
        ))
        .execute(&mut **tx)
        .await?;
        // Each index takes the name of the live index with its definition,
        // through a temporary name so two cannot collide on the way.
        let mut renames = Vec::new();
        for (definition, shadow_name) in &shadow_indexes {
            if let Some(live_name) = live_indexes.get(definition)
                && live_name != shadow_name
            {
                renames.push((shadow_name.clone(), live_name.clone()));
            }
        }
        for (i, (from, _)) in renames.iter().enumerate() {
            sqlx::query(&format!(
                "ALTER INDEX public.{} RENAME TO order_summary_swap_{i}",
                quote_ident(from)
            ))
            .execute(&mut **tx)
            .await?;
        }
        for (i, (_, to)) in renames.iter().enumerate() {
            sqlx::query(&format!(
                "ALTER INDEX public.order_summary_swap_{i} RENAME TO {}",
                quote_ident(to)
            ))
            .execute(&mut **tx)
            .await?;
        }
        for grant in grants {
            sqlx::query(&grant).execute(&mut **tx).await?;
        }
        sqlx::query(&format!(
            "COMMENT ON TABLE public.order_summary IS {}",
            comment.as_deref().unwrap_or("NULL")
        ))
        .execute(&mut **tx)
        .await?;
        sqlx::query(&format!("DROP SCHEMA {SCHEMA}"))
            .execute(&mut **tx)
            .await?;
        self.tx.commit().await
    }
}

/// `definition → name` of the indexes of `<schema>.order_summary`; the
/// definition is what follows `USING`, plus whether it is unique.
async fn indexes(
    tx: &mut Transaction<'static, Postgres>,
    schema: &str,
) -> sqlx::Result<HashMap<String, String>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.indisunique::text || ' ' || regexp_replace(pg_get_indexdef(i.indexrelid), '^.* USING ', ''), \
                c.relname::text \
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = $1 AND t.relname = 'order_summary'",
    )
    .bind(schema)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().collect())
}

/// An identifier quoted for SQL.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
