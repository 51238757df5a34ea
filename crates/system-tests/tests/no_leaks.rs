//! Nothing leaks: the services run as processes with secrets the test
//! knows (each service's database and Redis password, the token secret),
//! the test sends bearer tokens (valid ones, and a forged one with a marker
//! in it) and a second customer asks for the first one's order; then no
//! secret, no token and not the first customer's email appears in any
//! service's log (at debug level) or in any refusal or error body.
//!
//! A second query service whose write database is unreachable, with a
//! marker password in its URL, answers a strong read and `/readyz` with
//! errors: neither names its connection string.

#![allow(clippy::print_stdout)] // each answer is printed, for whoever reads a failure

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use orderflow_testkit::{eventually, unique_name};
use serde_json::{Value, json};
use system_tests::{Pipeline, ServiceProcess, binary, free_port, text};

/// Chatty enough that a careless `debug!` of a request or a URL would show.
const LOG_LEVEL: &str = "debug,hyper=info,h2=info,rdkafka=info,tokio=info,runtime=info,\
                         tower=info,reqwest=info,opentelemetry=info";

fn token(secret: &str, role: &str, subject: &str) -> String {
    let out = Command::new(binary("orderctl"))
        .args(["token", "--role", role, "--subject", subject])
        .env("AUTH_HS256_SECRET", secret)
        .output()
        .expect("orderctl token");
    assert!(
        out.status.success(),
        "orderctl token: {}",
        text(&out.stderr)
    );
    text(&out.stdout).trim().to_owned()
}

/// One request's status and body as text.
async fn call(
    request: reqwest::RequestBuilder,
    bearer: &str,
    body: Option<Value>,
) -> (u16, String) {
    let mut request = request.header("authorization", format!("Bearer {bearer}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

fn id(body: &str, field: &str) -> String {
    let value: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {body}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_token_or_other_customers_data_in_logs_or_error_bodies() {
    let pipeline = Pipeline::fresh("leaks").await;
    let dir: PathBuf = std::env::temp_dir().join(unique_name("leak_logs"));
    std::fs::create_dir_all(&dir).expect("log dir");
    let jwt_secret = format!("jwt-secret-{}", uuid::Uuid::new_v4().simple());
    let auth = [
        ("AUTH_DISABLED", "false".to_owned()),
        ("AUTH_HS256_SECRET", jwt_secret.clone()),
        ("RUST_LOG", LOG_LEVEL.to_owned()),
    ];
    let log = |name: &str| dir.join(format!("{name}.log"));
    let command = pipeline
        .start_logging("order-command", &auth, Some(&log("order-command")))
        .await;
    let _relay = pipeline
        .start_logging("outbox-relay", &auth, Some(&log("outbox-relay")))
        .await;
    let _summary = pipeline
        .start_logging("summary-projector", &auth, Some(&log("summary-projector")))
        .await;
    let query = pipeline
        .start_logging("order-query", &auth, Some(&log("order-query")))
        .await;

    // A query service whose write database cannot be reached.
    let unreachable_password = format!("db-password-{}", uuid::Uuid::new_v4().simple());
    let unreachable_url = format!(
        "postgres://{}:{unreachable_password}@127.0.0.1:1/nowhere",
        pipeline.access.role("query")
    );
    let broken_port = free_port();
    let mut env = pipeline.env("order-query");
    env.extend(pipeline.access.service_env(
        "order-query",
        &pipeline.write.url,
        &pipeline.read.url,
        &orderflow_testkit::redis_url(),
    ));
    env.extend(auth.iter().cloned());
    env.push(("WRITE_DATABASE_URL", unreachable_url.clone()));
    env.push(("QUERY_HTTP_ADDR", format!("127.0.0.1:{broken_port}")));
    let mut broken = ServiceProcess::start_logging(
        "order-query",
        broken_port,
        &env,
        Some(&log("order-query-broken")),
    );
    let http = reqwest::Client::new();
    broken.live(Duration::from_secs(60)).await;
    assert!(
        broken.child.try_wait().expect("wait").is_none(),
        "the broken query service exited"
    );

    let staff = token(&jwt_secret, "staff", "leak-staff");
    let (cmd, qry) = (command.base.clone(), query.base.clone());
    let email = format!("ada-{}@example.com", uuid::Uuid::new_v4().simple());
    let (status, ada) = call(
        http.post(format!("{cmd}/customers")),
        &staff,
        Some(json!({"name": "Ada Leakproof", "email": email})),
    )
    .await;
    assert_eq!(status, 201, "{ada}");
    let ada = id(&ada, "id");
    let (status, bob) = call(
        http.post(format!("{cmd}/customers")),
        &staff,
        Some(
            json!({"name": "Bob Curious", "email": format!("bob-{}@example.com", pipeline.topic)}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{bob}");
    let bob = id(&bob, "id");
    let (status, product) = call(http.post(format!("{cmd}/products")), &staff,
        Some(json!({"sku": "LEAK-1", "name": "Sealed box", "unit_price_minor": 500, "currency": "EUR", "stock": 10}))).await;
    assert_eq!(status, 201, "{product}");
    let product = id(&product, "id");
    let ada_token = token(&jwt_secret, "customer", &ada);
    let bob_token = token(&jwt_secret, "customer", &bob);
    let (status, placed) = call(http.post(format!("{cmd}/orders")), &ada_token, Some(json!({
        "customer_id": ada, "lines": [{"product_id": product, "quantity": 1}],
        "shipping_address": {"line1": "1 Quiet Lane", "city": "York", "postal_code": "YO1", "country": "GB"}}))).await;
    assert_eq!(status, 201, "{placed}");
    let order = id(&placed, "order_id");
    // Visible to its owner through the pipeline (the services did log work).
    eventually(
        "Ada's order in the read model",
        Duration::from_secs(60),
        || {
            let (http, url, bearer) = (
                http.clone(),
                format!("{qry}/orders/{order}"),
                ada_token.clone(),
            );
            async move { (call(http.get(url), &bearer, None).await.0 == 200).then_some(()) }
        },
    )
    .await;

    // What others get back: refusals and errors, every body kept.
    let forged = format!("forged-{}", uuid::Uuid::new_v4().simple());
    let mut bodies = Vec::new();
    for (what, request, bearer, body) in [
        (
            "bob reads ada's order",
            http.get(format!("{qry}/orders/{order}")),
            &bob_token,
            None,
        ),
        (
            "bob reads it strongly",
            http.get(format!("{qry}/orders/{order}?consistency=strong")),
            &bob_token,
            None,
        ),
        (
            "bob's status of it",
            http.get(format!("{qry}/orders/{order}/status")),
            &bob_token,
            None,
        ),
        (
            "bob lists ada's",
            http.get(format!("{qry}/orders?customer_id={ada}")),
            &bob_token,
            None,
        ),
        (
            "bob searches her name",
            http.get(format!("{qry}/orders/search?q=Leakproof")),
            &bob_token,
            None,
        ),
        (
            "bob cancels it",
            http.post(format!("{cmd}/orders/{order}/cancel")),
            &bob_token,
            Some(json!({"reason": "mine now"})),
        ),
        (
            "bob pays it",
            http.post(format!("{cmd}/orders/{order}/pay")),
            &bob_token,
            Some(json!({"payment_reference": "x"})),
        ),
        (
            "a forged token",
            http.get(format!("{qry}/orders/{order}")),
            &forged,
            None,
        ),
        (
            "a forged token, command",
            http.post(format!("{cmd}/orders/{order}/cancel")),
            &forged,
            Some(json!({"reason": "x"})),
        ),
        (
            "a strong read without its database",
            http.get(format!("{}/orders/{order}?consistency=strong", broken.base)),
            &staff,
            None,
        ),
        (
            "readyz without its database",
            http.get(format!("{}/readyz", broken.base)),
            &staff,
            None,
        ),
    ] {
        let (status, body) = call(request, bearer, body).await;
        println!("{what}: {status} {body}");
        bodies.push((what, body));
    }
    broken.terminate(Duration::from_secs(20)).await;
    for mut process in [command, query] {
        process.terminate(Duration::from_secs(20)).await;
    }

    let secrets = [
        (
            "a service's database/Redis password",
            pipeline.access.password.as_str(),
        ),
        ("the token secret", jwt_secret.as_str()),
        ("the staff token", staff.as_str()),
        ("ada's token", ada_token.as_str()),
        ("bob's token", bob_token.as_str()),
        ("the forged token", forged.as_str()),
        (
            "the unreachable database's password",
            unreachable_password.as_str(),
        ),
        ("a connection string", "postgres://"),
        ("a Redis URL with credentials", "redis://t_"),
    ];
    let mut leaks = Vec::new();
    for (what, body) in &bodies {
        for (secret, value) in secrets.iter().chain([&("ada's email", email.as_str())]) {
            if body.contains(value) {
                leaks.push(format!("{secret} in the answer to {what}"));
            }
        }
    }
    let logs = [
        "order-command",
        "outbox-relay",
        "summary-projector",
        "order-query",
        "order-query-broken",
    ];
    for name in logs {
        let content = std::fs::read_to_string(log(name)).expect("log");
        assert!(
            !content.is_empty(),
            "{name} logged nothing at {LOG_LEVEL}: the test would prove nothing"
        );
        for (secret, value) in secrets.iter().chain([&("ada's email", email.as_str())]) {
            if let Some(line) = content.lines().find(|l| l.contains(value)) {
                // The line, with every secret in it masked.
                let masked = secrets
                    .iter()
                    .fold(line.to_owned(), |l, (_, v)| l.replace(v, "<HERE>"));
                leaks.push(format!("{secret} in {name}'s log: {masked}"));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "leaked (logs in {}):\n{}",
        dir.display(),
        leaks.join("\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
