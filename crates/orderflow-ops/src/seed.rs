//! `orderctl seed`: a large, realistic write model in minutes, for
//! benchmarks and capacity tests.
//!
//! Rows are made by `generate_series` inside Postgres, one chunk of orders per
//! transaction, instead of through the command API: a million orders through
//! the API would take most of an hour and measure the API, not the reads. Each
//! order's row is what its events would have produced (its version counts
//! them; payments and shipments exist where they should), so live commands on
//! seeded orders, and projector events that follow them, behave as on any
//! other order. No outbox rows are written: the read models are filled by
//! [`crate::backfill`] from the write model instead.

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use futures::{StreamExt as _, TryStreamExt as _};
use sqlx::PgPool;
use time::OffsetDateTime;

/// What to generate.
#[derive(Debug, Clone, clap::Args)]
pub struct SeedPlan {
    /// Orders to add.
    #[arg(long, default_value_t = 1_000_000)]
    pub orders: i64,
    /// Average lines per order (each order has 1 to 2×avg−1).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(i32).range(1..=50))]
    pub lines_per_order: i32,
    /// Customers to create (default: one per ten orders, at least 100).
    #[arg(long)]
    pub customers: Option<i64>,
    /// Products to create (default: 10,000, at least 2×avg lines).
    #[arg(long, default_value_t = 10_000)]
    pub products: i64,
    /// Orders are spread over this many days before the seed.
    #[arg(long, default_value_t = 365)]
    pub days: i64,
    /// Orders per transaction.
    #[arg(long, default_value_t = 25_000)]
    pub chunk: i64,
    /// Chunks written at once.
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Names this seed's ids, SKUs and emails (default: random), so a second
    /// seed into the same database adds to the first.
    #[arg(long)]
    pub tag: Option<String>,
}

/// What a seed wrote.
#[derive(Debug, Clone)]
pub struct SeedReport {
    pub tag: String,
    pub customers: i64,
    pub products: i64,
    pub orders: i64,
    pub lines: i64,
    pub elapsed: Duration,
}

impl SeedPlan {
    fn customers(&self) -> i64 {
        self.customers.unwrap_or((self.orders / 10).max(100))
    }

    fn validate(&self) -> anyhow::Result<()> {
        ensure!(self.orders >= 1, "--orders must be at least 1");
        ensure!(self.customers() >= 1, "--customers must be at least 1");
        ensure!(
            self.products >= i64::from(2 * self.lines_per_order),
            "--products must be at least 2 × --lines-per-order, so no order names a product twice"
        );
        ensure!(self.days >= 1, "--days must be at least 1");
        ensure!(self.chunk >= 1, "--chunk must be at least 1");
        ensure!(self.jobs >= 1, "--jobs must be at least 1");
        if let Some(tag) = &self.tag {
            ensure!(
                !tag.is_empty()
                    && tag.len() <= 16
                    && tag
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
                "--tag must be 1 to 16 lower-case letters or digits"
            );
        }
        Ok(())
    }
}

/// Generates `plan` into the write database behind `pool` (migrated).
pub async fn seed(pool: &PgPool, plan: &SeedPlan) -> anyhow::Result<SeedReport> {
    plan.validate()?;
    let started = Instant::now();
    let tag = plan
        .tag
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_owned());
    let params = Params {
        tag: tag.clone(),
        total_orders: plan.orders,
        customers: plan.customers(),
        products: plan.products,
        lines_per_order: plan.lines_per_order,
        span_seconds: (plan.days * 86_400) as f64,
        start_at: OffsetDateTime::now_utc(),
    };

    in_transaction(
        pool,
        &params,
        0,
        0,
        include_str!("sql/seed_catalog.sql"),
        false,
    )
    .await
    .context("seeding customers and products")?;
    tracing::info!(
        tag,
        customers = params.customers,
        products = params.products,
        "orderctl.seed catalog written"
    );

    let chunks: Vec<(i64, i64)> = (0..plan.orders)
        .step_by(usize::try_from(plan.chunk)?)
        .map(|lo| (lo, (lo + plan.chunk).min(plan.orders)))
        .collect();
    let (mut done, mut lines) = (0_i64, 0_i64);
    let mut written = futures::stream::iter(chunks)
        .map(|(lo, hi)| {
            let params = &params;
            async move {
                let lines = in_transaction(
                    pool,
                    params,
                    lo,
                    hi,
                    include_str!("sql/seed_orders.sql"),
                    true,
                )
                .await
                .with_context(|| format!("seeding orders {lo}..{hi}"))?;
                anyhow::Ok((hi - lo, lines))
            }
        })
        .buffer_unordered(plan.jobs);
    while let Some((orders, chunk_lines)) = written.try_next().await? {
        done += orders;
        lines += chunk_lines;
        let rate = done as f64 / started.elapsed().as_secs_f64();
        tracing::info!(
            done,
            of = plan.orders,
            per_second = rate.round(),
            "orderctl.seed orders written"
        );
    }
    drop(written);

    sqlx::raw_sql("ANALYZE customers, products, stock, orders, order_lines, payments, shipments")
        .execute(pool)
        .await?;
    Ok(SeedReport {
        tag,
        customers: params.customers,
        products: params.products,
        orders: plan.orders,
        lines,
        elapsed: started.elapsed(),
    })
}

#[derive(Debug)]
struct Params {
    tag: String,
    total_orders: i64,
    customers: i64,
    products: i64,
    lines_per_order: i32,
    span_seconds: f64,
    start_at: OffsetDateTime,
}

/// Runs `sql` (several statements, no parameters) in one transaction that
/// first fills the `seed_params` temporary table the statements read, and
/// returns how many rows its `seed_lines` table has when `counts_lines`.
async fn in_transaction(
    pool: &PgPool,
    params: &Params,
    lo: i64,
    hi: i64,
    sql: &str,
    counts_lines: bool,
) -> anyhow::Result<i64> {
    let mut tx = pool.begin().await?;
    // A lost seed is rerun, not recovered: no need to wait for the disk.
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "CREATE TEMPORARY TABLE seed_params ON COMMIT DROP AS SELECT \
         $1::text AS tag, $2::bigint AS lo, $3::bigint AS hi, $4::bigint AS total_orders, \
         $5::bigint AS customers, $6::bigint AS products, $7::int AS lines_per_order, \
         $8::float8 AS span_seconds, $9::timestamptz AS start_at",
    )
    .bind(&params.tag)
    .bind(lo)
    .bind(hi)
    .bind(params.total_orders)
    .bind(params.customers)
    .bind(params.products)
    .bind(params.lines_per_order)
    .bind(params.span_seconds)
    .bind(params.start_at)
    .execute(&mut *tx)
    .await?;
    sqlx::raw_sql(sql).execute(&mut *tx).await?;
    let lines: i64 = if counts_lines {
        sqlx::query_scalar("SELECT count(*) FROM seed_lines")
            .fetch_one(&mut *tx)
            .await?
    } else {
        0
    };
    tx.commit().await?;
    Ok(lines)
}
