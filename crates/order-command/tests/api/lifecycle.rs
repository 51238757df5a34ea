use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::spawn;

#[tokio::test]
async fn place_order_reserves_stock_and_records_one_event() {
    let app = spawn().await;
    let customer = app.customer().await;
    let a = app.product(250, 10).await;
    let b = app.product(1000, 5).await;

    let reply = app.place(customer, &[(a, 2), (b, 1)]).await;

    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let order = reply.id("order_id");
    assert_eq!(reply.body["version"], json!(1));
    assert_eq!(reply.body["status"], json!("placed"));
    assert_eq!(
        reply.header("location"),
        Some(format!("/orders/{order}").as_str())
    );
    assert_eq!(reply.header("etag"), Some("\"1\""));
    assert_eq!(app.stock(a).await, 8);
    assert_eq!(app.stock(b).await, 4);

    let (total, status): (i64, String) =
        sqlx::query_as("SELECT total_minor, status FROM orders WHERE id = $1")
            .bind(order)
            .fetch_one(&app.db.pool)
            .await
            .expect("order row");
    assert_eq!((total, status.as_str()), (1500, "placed"));

    let events = app.outbox(order).await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e["event_type"], json!("OrderPlaced"));
    assert_eq!(e["aggregate_version"], json!(1));
    assert_eq!(e["aggregate_id"], json!(order));
    assert_eq!(e["payload"]["total_minor"], json!(1500));
    assert_eq!(e["payload"]["currency"], json!("EUR"));
    assert_eq!(e["payload"]["customer"]["name"], json!("Ada Lovelace"));
    assert_eq!(e["payload"]["lines"][0]["product_name"], json!("Widget"));
    assert_eq!(e["payload"]["lines"][1]["line_total_minor"], json!(1000));
}

#[tokio::test]
async fn full_lifecycle_versions_and_events_in_order() {
    let app = spawn().await;
    let (order, _) = app.placed_order().await;

    let paid = app
        .post(
            &format!("/orders/{order}/pay"),
            &json!({"payment_reference": "pay_1"}),
        )
        .await;
    assert_eq!(paid.status, StatusCode::OK, "{}", paid.body);
    assert_eq!(paid.body["version"], json!(2));
    assert_eq!(paid.header("etag"), Some("\"2\""));

    let shipped = app
        .post(
            &format!("/orders/{order}/ship"),
            &json!({"carrier": "DHL", "tracking_number": "JD01"}),
        )
        .await;
    assert_eq!(shipped.body["version"], json!(3), "{}", shipped.body);

    // Deliver takes no body at all.
    let delivered = app
        .send(
            reqwest::Method::POST,
            &format!("/orders/{order}/deliver"),
            None,
            &[],
        )
        .await;
    assert_eq!(delivered.status, StatusCode::OK, "{}", delivered.body);
    assert_eq!(delivered.body["status"], json!("delivered"));
    assert_eq!(delivered.body["version"], json!(4));

    let events = app.outbox(order).await;
    let types: Vec<_> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        types,
        ["OrderPlaced", "OrderPaid", "OrderShipped", "OrderDelivered"]
    );
    let versions: Vec<_> = events
        .iter()
        .map(|e| e["aggregate_version"].as_i64())
        .collect();
    assert_eq!(versions, [Some(1), Some(2), Some(3), Some(4)]);
    assert_eq!(events[1]["payload"]["amount_minor"], json!(2500));
    assert_eq!(events[2]["payload"]["tracking_number"], json!("JD01"));

    let (carrier, tracking): (String, String) =
        sqlx::query_as("SELECT carrier, tracking_number FROM shipments WHERE order_id = $1")
            .bind(order)
            .fetch_one(&app.db.pool)
            .await
            .expect("shipment");
    assert_eq!((carrier.as_str(), tracking.as_str()), ("DHL", "JD01"));
}

#[tokio::test]
async fn cancel_releases_stock_and_refunds_when_paid() {
    let app = spawn().await;
    let (unpaid, product) = app.placed_order().await;
    assert_eq!(app.stock(product).await, 98);
    let reply = app
        .post(
            &format!("/orders/{unpaid}/cancel"),
            &json!({"reason": "changed my mind"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["status"], json!("cancelled"));
    assert_eq!(app.stock(product).await, 100);
    let events = app.outbox(unpaid).await;
    assert_eq!(events[1]["event_type"], json!("OrderCancelled"));
    assert!(events[1]["payload"].get("refund_minor").is_none());

    let (paid, product) = app.placed_order().await;
    app.post(&format!("/orders/{paid}/pay"), &json!({})).await;
    let reply = app
        .post(
            &format!("/orders/{paid}/cancel"),
            &json!({"reason": "out of time"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(app.stock(product).await, 100);
    let refund: Option<i64> =
        sqlx::query_scalar("SELECT refund_minor FROM payments WHERE order_id = $1")
            .bind(paid)
            .fetch_one(&app.db.pool)
            .await
            .expect("payment");
    assert_eq!(refund, Some(2500));
    let events = app.outbox(paid).await;
    assert_eq!(events[2]["payload"]["refund_minor"], json!(2500));
}

#[tokio::test]
async fn illegal_transitions_answer_409_naming_the_state() {
    let app = spawn().await;
    let (order, _) = app.placed_order().await;

    let reply = app
        .post(
            &format!("/orders/{order}/ship"),
            &json!({"carrier": "DHL", "tracking_number": "1"}),
        )
        .await;
    reply.assert_problem(409, "invalid-transition");
    assert_eq!(reply.body["current_state"], json!("placed"));

    let reply = app
        .send(
            reqwest::Method::POST,
            &format!("/orders/{order}/deliver"),
            None,
            &[],
        )
        .await;
    reply.assert_problem(409, "invalid-transition");

    app.post(&format!("/orders/{order}/cancel"), &json!({"reason": "r"}))
        .await;
    let reply = app.post(&format!("/orders/{order}/pay"), &json!({})).await;
    reply.assert_problem(409, "invalid-transition");
    assert_eq!(reply.body["current_state"], json!("cancelled"));
    let reply = app
        .post(
            &format!("/orders/{order}/cancel"),
            &json!({"reason": "again"}),
        )
        .await;
    reply.assert_problem(409, "invalid-transition");
    assert_eq!(
        app.outbox(order).await.len(),
        2,
        "refused commands write no event"
    );
}

#[tokio::test]
async fn if_match_guards_against_lost_updates() {
    let app = spawn().await;
    let (order, _) = app.placed_order().await;

    let stale = app
        .post_with(
            &format!("/orders/{order}/pay"),
            &json!({}),
            &[("if-match", "\"7\"")],
        )
        .await;
    stale.assert_problem(412, "version-mismatch");
    assert_eq!(stale.body["current_version"], json!(1));

    let fresh = app
        .post_with(
            &format!("/orders/{order}/pay"),
            &json!({}),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);

    let garbage = app
        .post_with(
            &format!("/orders/{order}/ship"),
            &json!({}),
            &[("if-match", "yesterday")],
        )
        .await;
    garbage.assert_problem(400, "invalid-header");
}

#[tokio::test]
async fn unknown_and_invalid_orders() {
    let app = spawn().await;
    let reply = app
        .post(&format!("/orders/{}/pay", Uuid::now_v7()), &json!({}))
        .await;
    reply.assert_problem(404, "not-found");
    let reply = app.post("/orders/not-a-uuid/pay", &json!({})).await;
    reply.assert_problem(400, "invalid-id");
    let reply = app.post("/nowhere", &json!({})).await;
    reply.assert_problem(404, "not-found");
}

#[tokio::test]
async fn place_order_rejections() {
    let app = spawn().await;
    let customer = app.customer().await;
    let eur = app.product(100, 5).await;
    let usd = app.product_in(100, 5, "USD").await;
    let before = app.counts().await;

    app.place(Uuid::now_v7(), &[(eur, 1)])
        .await
        .assert_problem(422, "unknown-reference");
    app.place(customer, &[(Uuid::now_v7(), 1)])
        .await
        .assert_problem(422, "unknown-reference");
    app.place(customer, &[])
        .await
        .assert_problem(422, "order-rejected");
    app.place(customer, &[(eur, 1), (eur, 2)])
        .await
        .assert_problem(422, "order-rejected");
    app.place(customer, &[(eur, 1), (usd, 1)])
        .await
        .assert_problem(422, "order-rejected");
    let scarce = app.place(customer, &[(eur, 6)]).await;
    scarce.assert_problem(409, "insufficient-stock");
    assert_eq!(scarce.body["available"], json!(5));
    let many: Vec<_> = (0..101).map(|_| (eur, 1)).collect();
    app.place(customer, &many)
        .await
        .assert_problem(422, "order-rejected");
    assert_eq!(app.counts().await, before, "rejected orders write nothing");

    let inactive = app.product(100, 5).await;
    let reply = app
        .put(&format!("/products/{inactive}"), &json!({"sku": "OFF-1", "name": "Old", "unit_price_minor": 100, "currency": "EUR", "active": false}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mid = app.counts().await;
    app.place(customer, &[(inactive, 1)])
        .await
        .assert_problem(422, "order-rejected");

    assert_eq!(app.counts().await, mid, "rejected orders write nothing");
    assert_eq!(app.stock(eur).await, 5);
}
