use futures::future::join_all;
use reqwest::StatusCode;

use crate::helpers::{order_body, spawn};

#[tokio::test]
async fn fifty_concurrent_orders_for_ten_units_never_oversell() {
    let app = spawn().await;
    let customer = app.customer().await;
    let product = app.product(500, 10).await;

    let body = order_body(customer, &[(product, 1)]);
    let replies = join_all((0..50).map(|_| app.post("/orders", &body))).await;

    let created = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let refused: Vec<_> = replies
        .iter()
        .filter(|r| r.status != StatusCode::CREATED)
        .collect();
    assert_eq!(created, 10, "exactly the stock's worth of orders succeed");
    for reply in &refused {
        reply.assert_problem(409, "insufficient-stock");
    }
    assert_eq!(app.stock(product).await, 0);
    let placed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE event_type = 'OrderPlaced'")
            .fetch_one(&app.db.pool)
            .await
            .expect("count");
    assert_eq!(placed, 10);
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&app.db.pool)
        .await
        .expect("count");
    assert_eq!(orders, 10);
}

#[tokio::test]
async fn concurrent_commands_on_one_order_apply_once_in_version_order() {
    let app = spawn().await;
    let (order, _) = app.placed_order().await;
    let path = format!("/orders/{order}/pay");
    let body = serde_json::json!({});

    let replies = join_all((0..10).map(|_| app.post(&path, &body))).await;

    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(ok, 1, "one payment wins");
    for reply in replies.iter().filter(|r| r.status != StatusCode::OK) {
        reply.assert_problem(409, "invalid-transition");
    }
    let versions: Vec<i64> = app
        .outbox(order)
        .await
        .iter()
        .filter_map(|e| e["aggregate_version"].as_i64())
        .collect();
    assert_eq!(versions, [1, 2]);
}
