//! Regressions for what schemathesis (`scripts/check-api`) found: requests
//! the published OpenAPI document allows must not be refused as malformed,
//! and what it forbids must be refused.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{order_body, spawn};

/// JSON Schema counts `2.0` as an integer; the server refused it as
/// `invalid-body` ("invalid type: floating point").
#[tokio::test]
async fn whole_numbers_written_with_a_fraction_are_integers() {
    let app = spawn().await;
    let product = app
        .post(
            "/products",
            &json!({"sku": "FRAC-1", "name": "Mug", "unit_price_minor": 899.0, "currency": "EUR", "stock": 10.0}),
        )
        .await;
    assert_eq!(product.status, StatusCode::CREATED, "{}", product.body);
    assert_eq!(product.body["unit_price_minor"], 899);
    let id = product.id("id");
    let customer = app.customer().await;
    let mut body = order_body(customer, &[(id, 1)]);
    body["lines"][0]["quantity"] = json!(2.0);
    let order = app.post("/orders", &body).await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
    assert_eq!(app.stock(id).await, 8);
    let stock = app
        .put(&format!("/products/{id}/stock"), &json!({"available": 5.0}))
        .await;
    assert_eq!(stock.status, StatusCode::OK, "{}", stock.body);
    assert_eq!(stock.body["available"], 5);

    // A fraction, or a whole number beyond i64, is still no integer.
    for bad in [json!(2.5), json!(1e300), json!(9_223_372_036_854_775_808.0)] {
        let reply = app
            .put(&format!("/products/{id}/stock"), &json!({"available": bad}))
            .await;
        reply.assert_problem(422, "invalid-body");
    }
}

/// An empty `If-Match` was allowed by the document and refused by the
/// server; the document now publishes the forms the server accepts, and the
/// server accepts exactly those (and `*`, which matches any version).
#[tokio::test]
async fn if_match_accepts_exactly_the_published_forms() {
    let app = spawn().await;
    let (order, _) = app.placed_order().await;
    let pay = format!("/orders/{order}/pay");
    for bad in [
        "",
        "\"1",
        "1\"",
        "+1",
        "-1",
        "1.0",
        "\"\"",
        "1234567890123456789",
        "\"1\", \"2\"",
    ] {
        let reply = app
            .send(Method::POST, &pay, None, &[("if-match", bad)])
            .await;
        reply.assert_problem(400, "invalid-header");
    }
    let any = app
        .send(Method::POST, &pay, None, &[("if-match", "*")])
        .await;
    assert_eq!(any.status, StatusCode::OK, "{}", any.body);
    let ship = app
        .send(
            Method::POST,
            &format!("/orders/{order}/ship"),
            Some(br#"{"carrier":"DPD","tracking_number":"T1"}"#.to_vec()),
            &[
                ("if-match", "W/\"2\""),
                ("content-type", "application/json"),
            ],
        )
        .await;
    assert_eq!(ship.status, StatusCode::OK, "{}", ship.body);
    let deliver = format!("/orders/{order}/deliver");
    let stale = app
        .send(Method::POST, &deliver, None, &[("if-match", "2")])
        .await;
    stale.assert_problem(412, "version-mismatch");
    let deliver = app
        .send(Method::POST, &deliver, None, &[("if-match", "\"000003\"")])
        .await;
    assert_eq!(deliver.status, StatusCode::OK, "{}", deliver.body);
}

/// An email padded with whitespace to more than `maxLength` (254) was
/// accepted: the server trimmed before counting. The limit now counts the
/// string as sent, as the document says.
#[tokio::test]
async fn an_email_longer_than_its_max_length_is_refused_even_padded() {
    let app = spawn().await;
    let local = "a".repeat(240);
    let padded = format!("          {local}@example.com");
    assert_eq!(padded.chars().count(), 262);
    let reply = app
        .post("/customers", &json!({"name": "Ada", "email": padded}))
        .await;
    reply.assert_problem(422, "validation");
    assert_eq!(reply.body["errors"][0]["field"], "email", "{}", reply.body);
    let fits = format!("  {}@example.com  ", "b".repeat(238));
    assert_eq!(fits.chars().count(), 254);
    let reply = app
        .post("/customers", &json!({"name": "Ada", "email": fits}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}
