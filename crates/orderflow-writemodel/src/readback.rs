//! The write model read back as order summaries: the reference every read
//! model is compared with (reconciliation, end-to-end tests), and the
//! level-0 comparison the query API can serve.
//!
//! Each way of choosing orders is its own statement. One statement with
//! `$1 IS NULL OR id = ANY($1)` looked tidier, but once Postgres switched
//! it to a generic plan it walked the whole placed-at index and compared
//! every order with the list: fine on a test database, seconds per call on
//! a million orders.

use orderflow_readmodel::OrderSummary;
use sqlx::PgPool;
use uuid::Uuid;

macro_rules! summaries_of {
    ($chosen:literal) => {
        concat!(
            "WITH chosen AS (",
            $chosen,
            ")\n",
            include_str!("sql/summary_of_chosen.sql")
        )
    };
}

/// Summaries of `orders` (all orders when `None`) as the write model has
/// them, newest first.
pub async fn summaries(pool: &PgPool, orders: Option<&[Uuid]>) -> sqlx::Result<Vec<OrderSummary>> {
    let rows: Vec<sqlx::types::Json<OrderSummary>> = match orders {
        Some(ids) => {
            sqlx::query_scalar(summaries_of!("SELECT id FROM orders WHERE id = ANY($1)"))
                .bind(ids)
                .fetch_all(pool)
                .await?
        }
        None => {
            sqlx::query_scalar(summaries_of!("SELECT id FROM orders"))
                .fetch_all(pool)
                .await?
        }
    };
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// The `limit` newest orders' summaries, joined from the write model.
pub async fn recent(pool: &PgPool, limit: i64) -> sqlx::Result<Vec<OrderSummary>> {
    let rows: Vec<sqlx::types::Json<OrderSummary>> = sqlx::query_scalar(summaries_of!(
        "SELECT id FROM orders ORDER BY placed_at DESC, id DESC LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}
