//! The record of `orderctl reconcile` runs in the read database: when each
//! run started and finished, and per read model the orders checked, the
//! drift found by kind, a few example orders, and what a repair fixed.
//!
//! Reconcile is a job (a CronJob runs it hourly); its report on standard
//! output is gone when the pod is. Kept here, beside the read models it
//! checks, the last run is what `orderctl status` shows ("last drift check
//! 4 min ago: 0 drift") and what the query service exports as metrics, so
//! an alert fires on drift or on a check that stopped running. Reading
//! needs only SELECT, like the rest of the read database.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{PgPool, Row as _};
use time::OffsetDateTime;
use uuid::Uuid;

/// The kinds of drift, in the order reports list them.
pub const KINDS: [&str; 5] = ["missing", "behind", "ahead", "differs", "extra"];

/// Finished runs older than this are deleted when a run finishes.
const RETENTION_DAYS: i32 = 90;

/// One drifted order named in a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    pub order_id: Uuid,
    /// One of [`KINDS`].
    pub kind: String,
}

/// What one run found in one read model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelCheck {
    /// `summary`, `search` or `status`.
    pub model: String,
    /// Orders of the write model compared with it.
    pub checked: i64,
    /// Drifted orders by kind (every kind of [`KINDS`] present).
    pub drift: BTreeMap<String, i64>,
    /// The first few drifted orders.
    pub examples: Vec<Example>,
    /// Orders a repair fixed.
    pub repaired: i64,
    /// Drifted orders a repair did not fix.
    pub unrepaired: i64,
}

impl ModelCheck {
    /// Orders found drifted, of any kind.
    pub fn drifted(&self) -> i64 {
        self.drift.values().sum()
    }

    /// Drift the run left behind (all of it when it did not repair).
    pub fn unresolved(&self) -> i64 {
        self.drifted() - self.repaired
    }
}

/// One run, without its per-model rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub id: i64,
    pub started_at: OffsetDateTime,
    /// `None` while it runs (or when it died without finishing).
    pub finished_at: Option<OffsetDateTime>,
    pub repair: bool,
    /// Every order was compared.
    pub complete: bool,
    /// Orders in the write model.
    pub orders: Option<i64>,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// A read model's newest complete check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestCheck {
    pub run_id: i64,
    pub started_at: OffsetDateTime,
    pub finished_at: OffsetDateTime,
    pub repair: bool,
    pub check: ModelCheck,
}

/// Records that a run started; returns its id.
pub async fn start(pool: &PgPool, repair: bool) -> sqlx::Result<i64> {
    sqlx::query_scalar("INSERT INTO reconcile_runs (repair) VALUES ($1) RETURNING id")
        .bind(repair)
        .fetch_one(pool)
        .await
}

/// Records how run `id` ended, with what it found per model, in one
/// transaction; prunes runs past the retention.
pub async fn finish(
    pool: &PgPool,
    id: i64,
    complete: bool,
    orders: Option<i64>,
    error: Option<&str>,
    models: &[ModelCheck],
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    for m in models {
        sqlx::query(include_str!("sql/insert_model.sql"))
            .bind(id)
            .bind(&m.model)
            .bind(m.checked)
            .bind(Json(&m.drift))
            .bind(Json(&m.examples))
            .bind(m.repaired)
            .bind(m.unrepaired)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(include_str!("sql/finish.sql"))
        .bind(id)
        .bind(complete)
        .bind(orders)
        .bind(error)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM reconcile_runs WHERE finished_at < now() - make_interval(days => $1)")
        .bind(RETENTION_DAYS)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// The newest run, whatever its outcome.
pub async fn last_run(pool: &PgPool) -> sqlx::Result<Option<Run>> {
    let row = sqlx::query(include_str!("sql/last_run.sql"))
        .fetch_optional(pool)
        .await?;
    row.map(|r| {
        Ok(Run {
            id: r.try_get("id")?,
            started_at: r.try_get("started_at")?,
            finished_at: r.try_get("finished_at")?,
            repair: r.try_get("repair")?,
            complete: r.try_get("complete")?,
            orders: r.try_get("orders")?,
            error: r.try_get("error")?,
        })
    })
    .transpose()
}

/// Each read model's newest complete check (a run with `--only` checks
/// some models, so each model has its own newest).
pub async fn latest_per_model(pool: &PgPool) -> sqlx::Result<Vec<LatestCheck>> {
    sqlx::query(include_str!("sql/latest_per_model.sql"))
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok(LatestCheck {
                run_id: r.try_get("run_id")?,
                started_at: r.try_get("started_at")?,
                finished_at: r.try_get("finished_at")?,
                repair: r.try_get("repair")?,
                check: model_check(r)?,
            })
        })
        .collect()
}

fn model_check(r: &sqlx::postgres::PgRow) -> sqlx::Result<ModelCheck> {
    let Json(drift): Json<BTreeMap<String, i64>> = r.try_get("drift")?;
    let Json(examples): Json<Vec<Example>> = r.try_get("examples")?;
    Ok(ModelCheck {
        model: r.try_get("model")?,
        checked: r.try_get("checked")?,
        drift,
        examples,
        repaired: r.try_get("repaired")?,
        unrepaired: r.try_get("unrepaired")?,
    })
}
