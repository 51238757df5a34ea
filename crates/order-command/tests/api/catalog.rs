use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::spawn;

#[tokio::test]
async fn customers_create_update_and_conflict() {
    let app = spawn().await;
    let reply = app
        .post(
            "/customers",
            &json!({"name": "  Grace Hopper ", "email": "Grace@Example.com"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let id = reply.id("id");
    assert_eq!(reply.body["name"], json!("Grace Hopper"));
    assert_eq!(reply.body["email"], json!("grace@example.com"));
    assert_eq!(
        reply.header("location"),
        Some(format!("/customers/{id}").as_str())
    );

    let dup = app
        .post(
            "/customers",
            &json!({"name": "Other", "email": "grace@example.com"}),
        )
        .await;
    dup.assert_problem(409, "conflict");

    let updated = app
        .put(
            &format!("/customers/{id}"),
            &json!({"name": "Rear Admiral Hopper", "email": "grace@navy.mil"}),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["name"], json!("Rear Admiral Hopper"));

    let missing = app
        .put(
            &format!("/customers/{}", Uuid::now_v7()),
            &json!({"name": "x", "email": "x@y.io"}),
        )
        .await;
    missing.assert_problem(404, "not-found");

    let invalid = app
        .post("/customers", &json!({"name": "", "email": "nope"}))
        .await;
    invalid.assert_problem(422, "validation");
    let fields: Vec<_> = invalid.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].clone())
        .collect();
    assert_eq!(fields, [json!("name"), json!("email")]);
}

#[tokio::test]
async fn products_and_stock() {
    let app = spawn().await;
    let reply = app
        .post("/products", &json!({"sku": "mug-1", "name": "Mug", "unit_price_minor": 899, "currency": "eur", "stock": 3}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let id = reply.id("id");
    assert_eq!(reply.body["sku"], json!("MUG-1"));
    assert_eq!(reply.body["currency"], json!("EUR"));
    assert_eq!(reply.body["available"], json!(3));
    assert_eq!(reply.body["active"], json!(true));

    let dup = app
        .post(
            "/products",
            &json!({"sku": "MUG-1", "name": "Mug 2", "unit_price_minor": 1, "currency": "EUR"}),
        )
        .await;
    dup.assert_problem(409, "conflict");

    let stock = app
        .put(&format!("/products/{id}/stock"), &json!({"available": 42}))
        .await;
    assert_eq!(stock.body["available"], json!(42), "{}", stock.body);
    app.put(&format!("/products/{id}/stock"), &json!({"available": -1}))
        .await
        .assert_problem(422, "validation");
    app.put(
        &format!("/products/{}/stock", Uuid::now_v7()),
        &json!({"available": 1}),
    )
    .await
    .assert_problem(404, "not-found");

    let updated = app
        .put(&format!("/products/{id}"), &json!({"sku": "MUG-1", "name": "Big mug", "unit_price_minor": 999, "currency": "EUR", "active": false}))
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["active"], json!(false));
    assert_eq!(
        updated.body["available"],
        json!(42),
        "PUT leaves stock alone"
    );

    app.post(
        "/products",
        &json!({"sku": "X", "name": "Y", "unit_price_minor": -5, "currency": "EUR"}),
    )
    .await
    .assert_problem(422, "validation");
}
