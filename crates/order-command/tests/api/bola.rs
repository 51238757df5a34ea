//! Object-level authorization (OWASP API1), as a generated matrix: every
//! endpoint × verb × caller {own, other customer's, no token, bad token,
//! staff, service}, with the expected status; each cell runs on a fresh
//! object, and a refused cell must leave every table as it was.

#![allow(clippy::print_stdout)] // the coverage is the output

use std::collections::BTreeMap;
use std::time::Duration;

use orderflow_service::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    TestApp, auth_args, customer_token, order_body, service, spawn, spawn_with, staff, token,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Caller {
    Own,
    Other,
    NoToken,
    BadToken,
    Staff,
    Service,
}

const CALLERS: [Caller; 6] = [
    Caller::Own,
    Caller::Other,
    Caller::NoToken,
    Caller::BadToken,
    Caller::Staff,
    Caller::Service,
];

/// What a cell acts on: customer A owns it, B is the other customer.
struct Fixture {
    a: Uuid,
    b: Uuid,
    product: Uuid,
    /// An order of A in the state the endpoint needs.
    order: Option<Uuid>,
}

#[derive(Clone, Copy)]
struct Endpoint {
    method: &'static str,
    path: &'static str,
    /// The state the order must be in first (`None`: no order needed).
    needs: Option<&'static str>,
    /// Expected status for own, other, staff, service (no/bad token: 401).
    expect: [u16; 4],
}

const ENDPOINTS: [Endpoint; 10] = [
    Endpoint {
        method: "POST",
        path: "/customers",
        needs: None,
        expect: [403, 403, 201, 403],
    },
    Endpoint {
        method: "PUT",
        path: "/customers/{a}",
        needs: None,
        expect: [403, 403, 200, 403],
    },
    Endpoint {
        method: "POST",
        path: "/products",
        needs: None,
        expect: [403, 403, 201, 403],
    },
    Endpoint {
        method: "PUT",
        path: "/products/{p}",
        needs: None,
        expect: [403, 403, 200, 403],
    },
    Endpoint {
        method: "PUT",
        path: "/products/{p}/stock",
        needs: None,
        expect: [403, 403, 200, 403],
    },
    Endpoint {
        method: "POST",
        path: "/orders",
        needs: None,
        expect: [201, 403, 201, 201],
    },
    Endpoint {
        method: "POST",
        path: "/orders/{o}/pay",
        needs: Some("placed"),
        expect: [200, 404, 200, 200],
    },
    Endpoint {
        method: "POST",
        path: "/orders/{o}/ship",
        needs: Some("paid"),
        expect: [403, 403, 200, 200],
    },
    Endpoint {
        method: "POST",
        path: "/orders/{o}/deliver",
        needs: Some("shipped"),
        expect: [403, 403, 200, 200],
    },
    Endpoint {
        method: "POST",
        path: "/orders/{o}/cancel",
        needs: Some("placed"),
        expect: [200, 404, 200, 200],
    },
];

async fn fixture(app: &TestApp, needs: Option<&str>) -> Fixture {
    let a = app.customer().await;
    let b = app.customer().await;
    let product = app.product(1250, 100).await;
    let mut order = None;
    if let Some(state) = needs {
        let placed = app.place(a, &[(product, 1)]).await;
        assert_eq!(placed.status, 201, "{}", placed.body);
        let id = placed.id("order_id");
        let steps: &[(&str, Value)] = match state {
            "paid" => &[("pay", json!({}))],
            "shipped" => &[
                ("pay", json!({})),
                ("ship", json!({"carrier": "DHL", "tracking_number": "T1"})),
            ],
            _ => &[],
        };
        for (action, body) in steps {
            let r = app.post(&format!("/orders/{id}/{action}"), body).await;
            assert_eq!(r.status, 200, "{action}: {}", r.body);
        }
        order = Some(id);
    }
    Fixture {
        a,
        b,
        product,
        order,
    }
}

fn body(endpoint: &Endpoint, f: &Fixture) -> Option<Value> {
    let unique = Uuid::new_v4().simple().to_string();
    Some(match endpoint.path {
        "/customers" | "/customers/{a}" => {
            json!({"name": "Ada", "email": format!("{unique}@example.com")})
        }
        "/products" | "/products/{p}" => json!({"sku": format!("S-{}", &unique[..10]),
            "name": "Widget", "unit_price_minor": 100, "currency": "EUR"}),
        "/products/{p}/stock" => json!({"available": 7}),
        "/orders" => order_body(f.a, &[(f.product, 1)]),
        "/orders/{o}/ship" => json!({"carrier": "DHL", "tracking_number": "T2"}),
        "/orders/{o}/cancel" => json!({"reason": "changed my mind"}),
        "/orders/{o}/pay" => json!({"payment_reference": "ref-1"}),
        _ => return None,
    })
}

fn bearer(caller: Caller, f: &Fixture) -> String {
    match caller {
        Caller::Own => customer_token(f.a),
        Caller::Other => customer_token(f.b),
        Caller::NoToken => "-".to_owned(),
        Caller::BadToken => {
            // Right claims, wrong key.
            let claims = orderflow_service::auth::Claims::new(
                &f.a.to_string(),
                Role::Customer,
                crate::helpers::ISSUER,
                crate::helpers::AUDIENCE,
                Duration::from_secs(600),
            );
            orderflow_service::auth::mint_hs256(
                b"not-the-secret-but-long-enough-to-sign!!",
                &claims,
            )
            .expect("token")
        }
        Caller::Staff => staff(),
        Caller::Service => service(),
    }
}

fn expected(endpoint: &Endpoint, caller: Caller) -> u16 {
    match caller {
        Caller::Own => endpoint.expect[0],
        Caller::Other => endpoint.expect[1],
        Caller::NoToken | Caller::BadToken => 401,
        Caller::Staff => endpoint.expect[2],
        Caller::Service => endpoint.expect[3],
    }
}

/// The order's version, to prove a refused command changed nothing.
async fn version(app: &TestApp, order: Option<Uuid>) -> Option<i64> {
    let order = order?;
    sqlx::query_scalar("SELECT version FROM orders WHERE id = $1")
        .bind(order)
        .fetch_optional(&app.db.pool)
        .await
        .expect("version")
}

#[tokio::test]
async fn bola_matrix_every_endpoint_verb_and_caller() {
    let app = spawn().await;
    let mut matrix: BTreeMap<String, Vec<(Caller, u16)>> = BTreeMap::new();
    let mut cells = 0;
    for endpoint in &ENDPOINTS {
        for caller in CALLERS {
            let f = fixture(&app, endpoint.needs).await;
            let path = endpoint
                .path
                .replace("{a}", &f.a.to_string())
                .replace("{p}", &f.product.to_string())
                .replace("{o}", &f.order.map(|o| o.to_string()).unwrap_or_default());
            let want = expected(endpoint, caller);
            let before = app.snapshot().await;
            let version_before = version(&app, f.order).await;
            let token = bearer(caller, &f);
            let auth = if token == "-" {
                token.clone()
            } else {
                format!("Bearer {token}")
            };
            let payload = body(endpoint, &f).map(|b| b.to_string().into_bytes());
            let method = Method::from_bytes(endpoint.method.as_bytes()).expect("method");
            let reply = app
                .send(
                    method,
                    &path,
                    payload,
                    &[
                        ("content-type", "application/json"),
                        ("authorization", &auth),
                    ],
                )
                .await;
            let cell = format!("{} {} as {caller:?}", endpoint.method, endpoint.path);
            assert_eq!(reply.status.as_u16(), want, "{cell}: {}", reply.body);
            if reply.status.is_success() {
                assert_ne!(app.snapshot().await, before, "{cell}: a success writes");
            } else {
                assert_eq!(
                    reply.header("content-type"),
                    Some("application/problem+json"),
                    "{cell}"
                );
                assert_eq!(app.snapshot().await, before, "{cell}: nothing written");
                assert_eq!(
                    version(&app, f.order).await,
                    version_before,
                    "{cell}: order unchanged"
                );
                // A refusal names no other customer's data.
                let text = String::from_utf8_lossy(&reply.raw);
                assert!(
                    !text.contains(&f.a.to_string()) || caller == Caller::Own,
                    "{cell}: {text}"
                );
            }
            matrix
                .entry(format!("{:<6} {}", endpoint.method, endpoint.path))
                .or_default()
                .push((caller, reply.status.as_u16()));
            cells += 1;
        }
    }
    let mut printed = format!(
        "command API BOLA matrix: {} endpoints x {} callers = {cells} cells, each checked for status and nothing written\n",
        ENDPOINTS.len(),
        CALLERS.len()
    );
    printed.push_str(&format!("{:<28} {:?}\n", "", CALLERS));
    for (endpoint, row) in &matrix {
        let statuses: Vec<u16> = row.iter().map(|(_, s)| *s).collect();
        printed.push_str(&format!("{endpoint:<28} {statuses:?}\n"));
    }
    println!("{printed}");
    assert_eq!(cells, ENDPOINTS.len() * CALLERS.len());
}

/// Mass assignment: no body can set status, totals, versions or ids; a
/// customer token cannot place an order for someone else (the matrix) nor
/// change the customer by any other field.
#[tokio::test]
async fn mass_assignment_is_refused_and_writes_nothing() {
    let app = spawn().await;
    let a = app.customer().await;
    let product = app.product(1250, 100).await;
    let placed = app.place(a, &[(product, 1)]).await;
    let order = placed.id("order_id");
    let customer = format!("Bearer {}", customer_token(a));
    let mut cases = Vec::new();
    for (field, value) in [
        ("status", json!("delivered")),
        ("total_minor", json!(1)),
        ("version", json!(99)),
        ("order_id", json!(Uuid::new_v4())),
        ("customer", json!({"id": Uuid::new_v4()})),
        ("refund_minor", json!(100000)),
    ] {
        let mut place = order_body(a, &[(product, 1)]);
        place[field] = value.clone();
        cases.push(("/orders".to_owned(), place));
        cases.push((
            format!("/orders/{order}/pay"),
            json!({"payment_reference": "r", field: value.clone()}),
        ));
        cases.push((
            format!("/orders/{order}/cancel"),
            json!({"reason": "r", field: value}),
        ));
    }
    let mut line = order_body(a, &[(product, 1)]);
    line["lines"][0]["unit_price_minor"] = json!(1);
    cases.push(("/orders".to_owned(), line));
    let before = app.snapshot().await;
    for (path, body) in &cases {
        let reply = app
            .post_with(path, body, &[("authorization", &customer)])
            .await;
        reply.assert_problem(422, "invalid-body");
    }
    assert_eq!(app.snapshot().await, before, "nothing written");
    println!("mass-assignment bodies refused: {}", cases.len());
}

/// Idempotency keys are scoped by the token's subject: two callers that
/// pick the same key and body get two orders, and neither sees the other's
/// response.
#[tokio::test]
async fn the_same_idempotency_key_of_two_subjects_is_two_orders() {
    let app = spawn().await;
    let a = app.customer().await;
    let product = app.product(1250, 100).await;
    let body = order_body(a, &[(product, 1)]);
    let one = format!("Bearer {}", token("clerk-one", Role::Staff));
    let two = format!("Bearer {}", token("clerk-two", Role::Staff));
    let first = app
        .post_with(
            "/orders",
            &body,
            &[("authorization", &one), ("idempotency-key", "shared-key")],
        )
        .await;
    let second = app
        .post_with(
            "/orders",
            &body,
            &[("authorization", &two), ("idempotency-key", "shared-key")],
        )
        .await;
    assert_eq!((first.status.as_u16(), second.status.as_u16()), (201, 201));
    assert_ne!(first.id("order_id"), second.id("order_id"));
    assert_eq!(second.header("idempotent-replayed"), None);
    let again = app
        .post_with(
            "/orders",
            &body,
            &[("authorization", &one), ("idempotency-key", "shared-key")],
        )
        .await;
    assert_eq!(
        again.id("order_id"),
        first.id("order_id"),
        "the same subject replays"
    );
}

/// Per-subject rate limit: 429 with `Retry-After` once a subject's burst is
/// spent, nothing written; another subject is not affected.
#[tokio::test]
async fn a_subject_over_its_rate_gets_429_and_others_do_not() {
    let args = auth_args(&["--rate-per-second", "1", "--rate-burst", "3"]);
    let app = spawn_with(Duration::from_secs(3600), args).await;
    let hasty = format!("Bearer {}", token("hasty", Role::Staff));
    let calm = format!("Bearer {}", token("calm", Role::Staff));
    let body = |n: usize| json!({"name": "Ada", "email": format!("rate-{n}-{}@example.com", Uuid::new_v4().simple())});
    let mut statuses = Vec::new();
    for n in 0..20 {
        let reply = app
            .post_with("/customers", &body(n), &[("authorization", &hasty)])
            .await;
        if reply.status == 429 {
            reply.assert_problem(429, "too-many-requests");
            assert!(
                reply
                    .header("retry-after")
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_some_and(|s| s >= 1)
            );
            let before = app.counts().await;
            let again = app
                .post_with("/customers", &body(99), &[("authorization", &hasty)])
                .await;
            if again.status == 429 {
                assert_eq!(app.counts().await, before, "a 429 writes nothing");
            }
            statuses.push(429);
            break;
        }
        statuses.push(reply.status.as_u16());
    }
    assert_eq!(
        statuses.last(),
        Some(&429),
        "the burst of 3 runs out: {statuses:?}"
    );
    // The header a client could forge plays no part: only the subject counts.
    let other = app
        .post_with(
            "/customers",
            &body(100),
            &[("authorization", &calm), ("x-forwarded-for", "1.2.3.4")],
        )
        .await;
    assert_eq!(
        other.status, 201,
        "another subject has its own bucket: {}",
        other.body
    );
}
