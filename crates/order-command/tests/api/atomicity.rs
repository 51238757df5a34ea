//! PlaceOrder's atomicity: its write is one statement, so a fault at any
//! of its writes must leave nothing behind. The fault is real: a trigger
//! that raises on one table of this test's own database.

use reqwest::StatusCode;

use crate::helpers::{TestApp, order_body, spawn};

/// Every table PlaceOrder writes; each test run fails the write to one.
const WRITES: [&str; 5] = [
    "idempotency_keys",
    "orders",
    "order_lines",
    "stock",
    "outbox",
];

async fn fail_writes_to(app: &TestApp, table: &str) {
    sqlx::raw_sql(&format!(
        "CREATE OR REPLACE FUNCTION injected_fault() RETURNS trigger LANGUAGE plpgsql AS \
           $$ BEGIN RAISE EXCEPTION 'injected fault at %', TG_TABLE_NAME; END $$; \
         CREATE TRIGGER injected_fault BEFORE INSERT OR UPDATE ON {table} \
           FOR EACH ROW EXECUTE FUNCTION injected_fault();"
    ))
    .execute(&app.db.pool)
    .await
    .expect("fault trigger");
}

async fn heal(app: &TestApp, table: &str) {
    sqlx::raw_sql(&format!("DROP TRIGGER injected_fault ON {table}"))
        .execute(&app.db.pool)
        .await
        .expect("drop fault trigger");
}

#[tokio::test]
async fn a_fault_after_the_state_write_leaves_no_state_and_no_event() {
    for table in WRITES {
        let app = spawn().await;
        let customer = app.customer().await;
        let product = app.product(100, 10).await;
        let before = app.counts().await;
        fail_writes_to(&app, table).await;
        let body = order_body(customer, &[(product, 4)]);
        let key = [("idempotency-key", "k1")];

        let reply = app.post_with("/orders", &body, &key).await;

        reply.assert_problem(500, "internal");
        assert!(
            !reply.body.to_string().contains("injected"),
            "5xx answers must not leak internals: {}",
            reply.body
        );
        assert_eq!(
            app.counts().await,
            before,
            "fault writing {table}: nothing committed"
        );
        assert_eq!(
            app.stock(product).await,
            10,
            "fault writing {table}: stock untouched"
        );

        // The key was not burned: once the fault is gone the same request
        // places the order, once.
        heal(&app, table).await;
        let retry = app.post_with("/orders", &body, &key).await;
        assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.body);
        assert_eq!(app.stock(product).await, 6);
        assert_eq!(app.outbox(retry.id("order_id")).await.len(), 1);
    }
}
