//! One trace you can open: with `OTEL_EXPORTER_OTLP_ENDPOINT` set on every
//! service, the trace a command's HTTP request starts runs through the
//! relay's publish into each projector's apply. Read back from a real trace
//! backend, Jaeger (`scripts/stack up` starts it), through its query API.

#![allow(clippy::print_stdout)] // the trace id is the output

use std::collections::BTreeSet;
use std::time::Duration;

use orderflow_testkit::{eventually, unique_name};
use serde_json::{Value, json};
use system_tests::{Pipeline, post};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_runs_from_the_request_to_every_read_model() {
    let query = env_or("JAEGER_QUERY_URL", "http://127.0.0.1:16686");
    let otlp = env_or("JAEGER_OTLP_URL", "http://127.0.0.1:4318");
    let http = reqwest::Client::new();
    http.get(format!("{query}/api/services"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap_or_else(|e| {
            orderflow_testkit::engine_down(
                "Jaeger",
                &query,
                format!("{e} (`scripts/stack up jaeger`)"),
            )
        });

    let pipeline = Pipeline::fresh("traces").await;
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp),
        // Export spans a fifth of a second after they end, not after 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned()),
    ];
    let command = pipeline.start("order-command", &otel).await;
    let _relay = pipeline.start("outbox-relay", &otel).await;
    let mut projectors = Vec::new();
    for name in ["summary-projector", "search-projector", "status-projector"] {
        projectors.push(pipeline.start(name, &otel).await);
    }

    let base = command.base.clone();
    let (_, customer) = post(
        &http,
        format!("{base}/customers"),
        json!({"name": "Otto", "email": format!("{}@example.com", unique_name("o"))}),
    )
    .await;
    let (_, product) = post(&http, format!("{base}/products"),
        json!({"sku": "TRACED-1", "name": "Scope", "unit_price_minor": 700, "currency": "EUR", "stock": 10})).await;
    // The caller starts the trace, so the test knows its id.
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let placed = http
        .post(format!("{base}/orders"))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&json!({"customer_id": customer["id"], "lines": [{"product_id": product["id"], "quantity": 1}],
            "shipping_address": {"line1": "1 Way", "city": "Leeds", "postal_code": "LS1", "country": "GB"}}))
        .send()
        .await
        .expect("place");
    assert_eq!(placed.status(), 201);

    let wanted: BTreeSet<&str> = [
        "order-command",
        "outbox-relay",
        "summary-projector",
        "search-projector",
        "status-projector",
    ]
    .into();
    let services = eventually(
        "one trace with a span of every service",
        Duration::from_secs(90),
        || async {
            let body: Value = http
                .get(format!("{query}/api/traces/{trace_id}"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let processes = body["data"][0]["processes"].as_object()?;
            let services: BTreeSet<String> = processes
                .values()
                .filter_map(|p| p["serviceName"].as_str().map(str::to_owned))
                .collect();
            wanted
                .iter()
                .all(|w| services.contains(*w))
                .then_some(services)
        },
    )
    .await;
    println!("trace {trace_id}: {services:?}");
    drop(projectors);
}
