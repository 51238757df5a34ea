use reqwest::StatusCode;
use serde_json::json;

use order_command::faults::{AFTER_STATE_WRITE, BEFORE_COMMIT};

use crate::helpers::{order_body, spawn};

#[tokio::test]
async fn a_fault_after_the_state_write_leaves_no_state_and_no_event() {
    for point in [AFTER_STATE_WRITE, BEFORE_COMMIT] {
        let app = spawn().await;
        let customer = app.customer().await;
        let product = app.product(100, 10).await;
        let before = app.counts().await;
        app.faults.arm(point);

        let reply = app
            .post_with(
                "/orders",
                &order_body(customer, &[(product, 4)]),
                &[("idempotency-key", "k1")],
            )
            .await;

        reply.assert_problem(500, "internal");
        assert!(
            !reply.body.to_string().contains(point),
            "5xx answers must not leak internals: {}",
            reply.body
        );
        assert_eq!(
            app.counts().await,
            before,
            "fault at {point}: nothing committed"
        );
        assert_eq!(
            app.stock(product).await,
            10,
            "fault at {point}: stock untouched"
        );
    }
}

#[tokio::test]
async fn a_fault_in_a_transition_keeps_the_previous_state() {
    let app = spawn().await;
    let (order, product) = app.placed_order().await;
    let before = app.counts().await;
    app.faults.arm(BEFORE_COMMIT);

    let pay = app.post(&format!("/orders/{order}/pay"), &json!({})).await;
    pay.assert_problem(500, "internal");
    let cancel = app
        .post(&format!("/orders/{order}/cancel"), &json!({"reason": "r"}))
        .await;
    cancel.assert_problem(500, "internal");

    assert_eq!(app.counts().await, before);
    let (status, version): (String, i64) =
        sqlx::query_as("SELECT status, version FROM orders WHERE id = $1")
            .bind(order)
            .fetch_one(&app.db.pool)
            .await
            .expect("order");
    assert_eq!((status.as_str(), version), ("placed", 1));
    assert_eq!(
        app.stock(product).await,
        98,
        "the failed cancel released nothing"
    );
    assert_eq!(reply_status_ok(&app, order).await, StatusCode::NOT_FOUND);
}

/// No payment row exists (a sanity check that the failed pay wrote nothing).
async fn reply_status_ok(app: &crate::helpers::TestApp, order: uuid::Uuid) -> StatusCode {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM payments WHERE order_id = $1")
        .bind(order)
        .fetch_one(&app.db.pool)
        .await
        .expect("count");
    if n == 0 {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    }
}
