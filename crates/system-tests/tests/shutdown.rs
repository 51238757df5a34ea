//! A projector told to stop while its store is failing stops cleanly: exit
//! status 0 within the grace period, not an error exit that an orchestrator
//! would count as a crash. What it had not made durable is simply consumed
//! again by the next instance.

use std::time::Duration;

use orderflow_testkit::eventually;
use serde_json::json;
use system_tests::{Pipeline, raw_envelope};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_a_store_is_failing_exits_zero() {
    let pipeline = Pipeline::fresh("shutdown").await;
    let mut projector = pipeline.start("status-projector", &[]).await;

    // Holding events will fail: the table is not there (as when the read
    // database refuses writes). Redis, the store itself, is fine.
    sqlx::query("ALTER TABLE held_events RENAME TO held_events_away")
        .execute(&pipeline.read.pool)
        .await
        .expect("rename");
    // Version 2 of an order whose version 1 never came: it must be held.
    let order = uuid::Uuid::now_v7();
    let (_, envelope) = raw_envelope(
        order,
        2,
        "OrderPaid",
        1,
        json!({"order_id": order, "amount_minor": 100, "currency": "EUR", "paid_at": "2026-12-01T00:00:00Z"}),
    );
    pipeline
        .produce_raw(&order.to_string(), envelope.to_string().as_bytes())
        .await;

    let http = reqwest::Client::new();
    let readyz = format!("{}/readyz", projector.base);
    eventually(
        "the projector to report the failing store",
        Duration::from_secs(60),
        || async {
            let response = http.get(&readyz).send().await.ok()?;
            let body = response.text().await.unwrap_or_default();
            body.contains("holding events").then_some(())
        },
    )
    .await;

    // SHUTDOWN_GRACE is 5 s for system-test processes.
    let status = projector.terminate(Duration::from_secs(30)).await;
    assert!(
        status.success(),
        "status-projector exited with {status} after SIGTERM"
    );
}
