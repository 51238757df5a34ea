//! The write model read back as order summaries: the reference every read
//! model is compared with (reconciliation, end-to-end tests).

use orderflow_readmodel::OrderSummary;
use sqlx::PgPool;
use uuid::Uuid;

/// Summaries of `orders` (all orders when `None`) as the write model has them.
pub async fn summaries(
    pool: &PgPool,
    orders: Option<&[Uuid]>,
) -> anyhow::Result<Vec<OrderSummary>> {
    let rows: Vec<sqlx::types::Json<OrderSummary>> =
        sqlx::query_scalar(include_str!("sql/summaries_from_write_model.sql"))
            .bind(orders)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}
