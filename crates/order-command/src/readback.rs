//! The write model read back as order summaries: the reference every read
//! model is compared with (reconciliation, end-to-end tests), and the
//! level-0 comparison the query API can serve.

use orderflow_readmodel::OrderSummary;
use sqlx::PgPool;
use uuid::Uuid;

/// Summaries of `orders` (all orders when `None`) as the write model has
/// them, newest first.
pub async fn summaries(
    pool: &PgPool,
    orders: Option<&[Uuid]>,
) -> anyhow::Result<Vec<OrderSummary>> {
    query(pool, orders, None).await
}

/// The `limit` newest orders' summaries, joined from the write model.
pub async fn recent(pool: &PgPool, limit: i64) -> anyhow::Result<Vec<OrderSummary>> {
    query(pool, None, Some(limit)).await
}

async fn query(
    pool: &PgPool,
    orders: Option<&[Uuid]>,
    limit: Option<i64>,
) -> anyhow::Result<Vec<OrderSummary>> {
    let rows: Vec<sqlx::types::Json<OrderSummary>> =
        sqlx::query_scalar(include_str!("sql/summaries_from_write_model.sql"))
            .bind(orders)
            .bind(limit)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}
