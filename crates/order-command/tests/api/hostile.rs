//! Malformed, oversized and hostile requests: each gets a 4xx
//! problem+json answer and changes nothing anywhere.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, order_body, spawn};

struct Case {
    name: &'static str,
    method: Method,
    path: String,
    body: Option<Vec<u8>>,
    headers: Vec<(&'static str, String)>,
    status: u16,
    slug: &'static str,
}

fn json_case(
    name: &'static str,
    path: &str,
    body: String,
    status: u16,
    slug: &'static str,
) -> Case {
    Case {
        name,
        method: Method::POST,
        path: path.to_owned(),
        body: Some(body.into_bytes()),
        headers: vec![("content-type", "application/json".to_owned())],
        status,
        slug,
    }
}

async fn run(app: &TestApp, case: &Case) {
    let headers: Vec<(&str, &str)> = case.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let reply = app
        .send(case.method.clone(), &case.path, case.body.clone(), &headers)
        .await;
    assert!(
        reply.status.is_client_error(),
        "{}: got {} {}",
        case.name,
        reply.status,
        reply.body
    );
    assert_eq!(
        reply.status.as_u16(),
        case.status,
        "{}: {}",
        case.name,
        reply.body
    );
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json"),
        "{}",
        case.name
    );
    assert_eq!(
        reply.body["type"],
        json!(format!("https://orderflow.dev/problems/{}", case.slug)),
        "{}: {}",
        case.name,
        reply.body
    );
}

#[tokio::test]
async fn hostile_inputs_are_refused_and_write_nothing() {
    let app = spawn().await;
    let customer = app.customer().await;
    let product = app.product(100, 10).await;
    let (order, _) = app.placed_order().await;
    let good = order_body(customer, &[(product, 1)]);
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut body = good.clone();
        f(&mut body);
        body.to_string()
    };

    let cases = vec![
        json_case("truncated json", "/orders", r#"{"customer_id": "#.into(), 400, "malformed-json"),
        json_case("not json at all", "/orders", "customer_id=1".into(), 400, "malformed-json"),
        json_case("trailing garbage", "/orders", format!("{good} {{"), 400, "malformed-json"),
        json_case("empty body", "/orders", String::new(), 400, "malformed-json"),
        json_case("array instead of object", "/orders", "[]".into(), 422, "invalid-body"),
        json_case("wrong type for quantity", "/orders", with(&|b| b["lines"][0]["quantity"] = json!("two")), 422, "invalid-body"),
        json_case("quantity 0", "/orders", with(&|b| b["lines"][0]["quantity"] = json!(0)), 422, "validation"),
        json_case("quantity -1", "/orders", with(&|b| b["lines"][0]["quantity"] = json!(-1)), 422, "validation"),
        json_case("quantity 2^63", "/orders", with(&|b| b["lines"][0]["quantity"] = json!(9_223_372_036_854_775_808u64)), 422, "invalid-body"),
        json_case("quantity 1.5", "/orders", with(&|b| b["lines"][0]["quantity"] = json!(1.5)), 422, "invalid-body"),
        json_case("unknown top-level field", "/orders", with(&|b| b["discount"] = json!(100)), 422, "invalid-body"),
        json_case("unknown nested field", "/orders", with(&|b| b["lines"][0]["unit_price_minor"] = json!(1)), 422, "invalid-body"),
        json_case("invalid customer uuid", "/orders", with(&|b| b["customer_id"] = json!("42")), 422, "invalid-body"),
        json_case("missing lines", "/orders", with(&|b| { b.as_object_mut().map(|o| o.remove("lines")); }), 422, "invalid-body"),
        json_case("NUL byte in address", "/orders", with(&|b| b["shipping_address"]["city"] = json!("Lon\u{0}don")), 422, "validation"),
        json_case("NUL byte in customer name", "/customers", json!({"name": "Ada\u{0}", "email": "nul@example.com"}).to_string(), 422, "validation"),
        json_case("name of 10 KB", "/customers", json!({"name": "x".repeat(10_000), "email": "long@example.com"}).to_string(), 422, "validation"),
        json_case("SQL metacharacters in SKU", "/products", json!({"sku": "X'; DROP TABLE orders;--", "name": "n", "unit_price_minor": 1, "currency": "EUR"}).to_string(), 422, "validation"),
        json_case("negative price", "/products", json!({"sku": "NEG", "name": "n", "unit_price_minor": -1, "currency": "EUR"}).to_string(), 422, "validation"),
        json_case("price beyond the money range", "/products", json!({"sku": "BIG", "name": "n", "unit_price_minor": i64::MAX, "currency": "EUR"}).to_string(), 422, "validation"),
        json_case("bad currency", "/products", json!({"sku": "CUR", "name": "n", "unit_price_minor": 1, "currency": "€"}).to_string(), 422, "validation"),
        json_case("country not alpha-2", "/orders", with(&|b| b["shipping_address"]["country"] = json!("Britain")), 422, "validation"),
        json_case("country not assigned (UK)", "/orders", with(&|b| b["shipping_address"]["country"] = json!("UK")), 422, "address-rejected"),
        json_case("region of another country", "/orders", with(&|b| b["shipping_address"]["region"] = json!("US-CA")), 422, "address-rejected"),
        json_case("region not ISO 3166-2", "/orders", with(&|b| b["shipping_address"]["region"] = json!("Greater London")), 422, "validation"),
        json_case("region not a string", "/orders", with(&|b| b["shipping_address"]["region"] = json!(42)), 422, "invalid-body"),
        json_case("unknown sales channel", "/orders", with(&|b| b["sales_channel"] = json!("fax")), 422, "invalid-body"),
        json_case("sales channel in another case", "/orders", with(&|b| b["sales_channel"] = json!("WEB")), 422, "invalid-body"),
        json_case("empty reason", &format!("/orders/{order}/cancel"), json!({"reason": "  "}).to_string(), 422, "validation"),
        json_case("tracking number of 10 KB", &format!("/orders/{order}/ship"), json!({"carrier": "DHL", "tracking_number": "9".repeat(10_000)}).to_string(), 422, "validation"),
        json_case("unknown field on pay", &format!("/orders/{order}/pay"), json!({"amount_minor": 1}).to_string(), 422, "invalid-body"),
        Case {
            name: "1 MiB body",
            method: Method::POST,
            path: "/orders".into(),
            body: Some(format!("{{\"customer_id\": \"{}\"}}", "a".repeat(1 << 20)).into_bytes()),
            headers: vec![("content-type", "application/json".into())],
            status: 413,
            slug: "payload-too-large",
        },
        Case {
            name: "wrong content type",
            method: Method::POST,
            path: "/orders".into(),
            body: Some(good.to_string().into_bytes()),
            headers: vec![("content-type", "text/plain".into())],
            status: 415,
            slug: "unsupported-media-type",
        },
        Case {
            name: "no content type",
            method: Method::POST,
            path: "/customers".into(),
            body: Some(json!({"name": "A", "email": "a@b.co"}).to_string().into_bytes()),
            headers: vec![],
            status: 415,
            slug: "unsupported-media-type",
        },
        Case {
            name: "invalid id in path",
            method: Method::POST,
            path: "/orders/1%27%20OR%201=1/pay".into(),
            body: None,
            headers: vec![],
            status: 400,
            slug: "invalid-id",
        },
        Case {
            name: "idempotency key with spaces",
            method: Method::POST,
            path: "/orders".into(),
            body: Some(good.to_string().into_bytes()),
            headers: vec![("content-type", "application/json".into()), ("idempotency-key", "a b".into())],
            status: 400,
            slug: "invalid-header",
        },
        Case {
            name: "idempotency key of 300 characters",
            method: Method::POST,
            path: "/orders".into(),
            body: Some(good.to_string().into_bytes()),
            headers: vec![("content-type", "application/json".into()), ("idempotency-key", "k".repeat(300))],
            status: 400,
            slug: "invalid-header",
        },
        Case {
            name: "wrong method",
            method: Method::DELETE,
            path: "/orders".into(),
            body: None,
            headers: vec![],
            status: 405,
            slug: "method-not-allowed",
        },
    ];
    assert!(cases.len() >= 20);

    let before = app.counts().await;
    for case in &cases {
        run(&app, case).await;
    }
    assert_eq!(app.counts().await, before, "no hostile request wrote a row");
    assert_eq!(app.stock(product).await, 10);
}
