//! Atomicity of the lifecycle commands under injected faults, through the
//! `fail` crate's fault points (`AFTER_STATE_WRITE`, `BEFORE_COMMIT` in
//! `orders::transition`). Its own test binary: `fail`'s registry is
//! process-global, so an armed point would fail the requests of every test
//! running beside it. Here each test holds a `fail::FailScenario`, which
//! runs them one at a time and disarms everything when it drops; the `api`
//! binary arms nothing. Test builds enable `fail/failpoints` (a
//! dev-dependency); release builds compile the points out.

// The command service's test harness, shared with the `api` binary, which
// uses more of it.
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;

use order_command::orders::transition::{AFTER_STATE_WRITE, BEFORE_COMMIT};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn;

#[tokio::test]
async fn a_fault_in_a_transition_keeps_the_previous_state() {
    for point in [AFTER_STATE_WRITE, BEFORE_COMMIT] {
        let scenario = fail::FailScenario::setup();
        let app = spawn().await;
        let (order, product) = app.placed_order().await;
        let before = app.counts().await;
        fail::cfg(point, "return").expect("arm the fault point");

        let pay = app.post(&format!("/orders/{order}/pay"), &json!({})).await;
        pay.assert_problem(500, "internal");
        assert!(
            !pay.body.to_string().contains(point),
            "5xx answers must not leak internals: {}",
            pay.body
        );
        let cancel = app
            .post(&format!("/orders/{order}/cancel"), &json!({"reason": "r"}))
            .await;
        cancel.assert_problem(500, "internal");

        assert_eq!(app.counts().await, before, "fault at {point}");
        let (status, version): (String, i64) =
            sqlx::query_as("SELECT status, version FROM orders WHERE id = $1")
                .bind(order)
                .fetch_one(&app.db.pool)
                .await
                .expect("order");
        assert_eq!(
            (status.as_str(), version),
            ("placed", 1),
            "fault at {point}"
        );
        assert_eq!(
            app.stock(product).await,
            98,
            "fault at {point}: the failed cancel released nothing"
        );
        let payments: i64 = sqlx::query_scalar("SELECT count(*) FROM payments WHERE order_id = $1")
            .bind(order)
            .fetch_one(&app.db.pool)
            .await
            .expect("count");
        assert_eq!(
            payments, 0,
            "fault at {point}: the failed pay wrote nothing"
        );

        // Disarmed, the same command goes through.
        scenario.teardown();
        let pay = app.post(&format!("/orders/{order}/pay"), &json!({})).await;
        assert_eq!(pay.status, StatusCode::OK, "{}", pay.body);
    }
}
