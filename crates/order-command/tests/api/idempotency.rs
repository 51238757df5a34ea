use std::collections::HashSet;
use std::time::Duration;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{order_body, spawn, spawn_with_ttl};

#[tokio::test]
async fn a_retried_post_returns_the_first_response() {
    let app = spawn().await;
    let customer = app.customer().await;
    let product = app.product(100, 10).await;
    let body = order_body(customer, &[(product, 1)]);
    let key = [("idempotency-key", "order-attempt-1")];

    let first = app.post_with("/orders", &body, &key).await;
    let second = app.post_with("/orders", &body, &key).await;

    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(first.raw, second.raw, "same body byte for byte");
    assert_eq!(first.header("location"), second.header("location"));
    assert_eq!(first.header("etag"), second.header("etag"));
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(first.header("idempotent-replayed"), None);
    assert_eq!(app.stock(product).await, 9, "stock reserved once");

    // Same key, different request: refused, nothing written.
    let before = app.counts().await;
    let other = app
        .post_with("/orders", &order_body(customer, &[(product, 2)]), &key)
        .await;
    other.assert_problem(422, "idempotency-key-reused");
    assert_eq!(app.counts().await, before);

    // Keys are per endpoint too: the same key on another POST is another request.
    let pay = app
        .post_with(
            &format!("/orders/{}/pay", first.id("order_id")),
            &json!({}),
            &key,
        )
        .await;
    pay.assert_problem(422, "idempotency-key-reused");
}

#[tokio::test]
async fn twenty_concurrent_copies_make_one_order() {
    let app = spawn().await;
    let customer = app.customer().await;
    let product = app.product(100, 100).await;
    let body = order_body(customer, &[(product, 3)]);
    let key = [("idempotency-key", "burst-1")];

    let replies = join_all((0..20).map(|_| app.post_with("/orders", &body, &key))).await;

    let ids: HashSet<_> = replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            r.id("order_id")
        })
        .collect();
    assert_eq!(ids.len(), 1, "every copy names the same order");
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&app.db.pool)
        .await
        .expect("count");
    assert_eq!(orders, 1);
    assert_eq!(app.stock(product).await, 97);
    assert_eq!(
        app.outbox(*ids.iter().next().expect("one id")).await.len(),
        1
    );
}

#[tokio::test]
async fn failed_commands_do_not_burn_the_key() {
    let app = spawn().await;
    let customer = app.customer().await;
    let product = app.product(100, 1).await;
    let body = order_body(customer, &[(product, 2)]);
    let key = [("idempotency-key", "retry-after-restock")];

    app.post_with("/orders", &body, &key)
        .await
        .assert_problem(409, "insufficient-stock");
    app.put(
        &format!("/products/{product}/stock"),
        &json!({"available": 5}),
    )
    .await;
    let retry = app.post_with("/orders", &body, &key).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.body);
}

#[tokio::test]
async fn expired_keys_are_forgotten() {
    // A zero window: every key is already expired when the next request comes.
    let app = spawn_with_ttl(Duration::ZERO).await;
    let customer = app.customer().await;
    let product = app.product(100, 10).await;
    let body = order_body(customer, &[(product, 1)]);
    let key = [("idempotency-key", "short-lived")];

    let first = app.post_with("/orders", &body, &key).await;
    let second = app.post_with("/orders", &body, &key).await;

    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(second.status, StatusCode::CREATED);
    assert_ne!(first.id("order_id"), second.id("order_id"));
    assert_eq!(second.header("idempotent-replayed"), None);
    let pruned = order_command::idempotency::prune_expired(&app.db.pool, 100)
        .await
        .expect("prune");
    assert_eq!(pruned, 1);
}
