//! The system as `scripts/run` starts it meets a hostile producer.
//!
//! The topology comes from `orderctl setup` (the binary), the dead-letter
//! topic has the name the projectors derive by default, and every service
//! runs as a process. Another producer then writes an undecodable record,
//! an unknown event type and a `schema_version` 99 straight to the events
//! topic. Every later order must still become visible through the query API
//! and the search index, every projector must dead-letter all three with
//! its reason, and every projector must stay ready.

use std::time::Duration;

use orderflow_testkit::{eventually, kafka_config, unique_name};
use rdkafka::Message as _;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::Headers as _;
use serde_json::json;
use system_tests::{Pipeline, post, raw_envelope};

const DEADLINE: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_from_another_producer_stops_no_read_model() {
    let pipeline = Pipeline::fresh("poison").await;
    // At the default log level: the trace context must not depend on it.
    let command = pipeline
        .start("order-command", &[("RUST_LOG", "info".to_owned())])
        .await;
    let _relay = pipeline.start("outbox-relay", &[]).await;
    let mut projectors = Vec::new();
    for name in ["summary-projector", "search-projector", "status-projector"] {
        projectors.push(pipeline.start(name, &[]).await);
    }
    let query = pipeline.start("order-query", &[]).await;

    let http = reqwest::Client::new();
    let base = command.base.clone();
    let (status, customer) = post(
        &http,
        format!("{base}/customers"),
        json!({"name": "Pat Poison", "email": format!("{}@example.com", unique_name("p"))}),
    )
    .await;
    assert_eq!(status, 201, "{customer}");
    let (status, product) = post(&http, format!("{base}/products"), json!({"sku": "POISON-1", "name": "Antidote", "unit_price_minor": 999, "currency": "EUR", "stock": 1000})).await;
    assert_eq!(status, 201, "{product}");
    let place = || {
        let http = http.clone();
        let url = format!("{base}/orders");
        let body = json!({"customer_id": customer["id"], "lines": [{"product_id": product["id"], "quantity": 1}],
            "shipping_address": {"line1": "1 Way", "city": "Leeds", "postal_code": "LS1", "country": "GB"}});
        async move {
            let (status, placed) = post(&http, url, body).await;
            assert_eq!(status, 201, "{placed}");
            placed["order_id"].as_str().expect("order id").to_owned()
        }
    };

    // Poison on several keys, so it lands on several partitions.
    let envelope = |event_type: &str, schema_version: u32| {
        raw_envelope(
            uuid::Uuid::now_v7(),
            1,
            event_type,
            schema_version,
            json!({}),
        )
        .1
        .to_string()
        .into_bytes()
    };
    let poison: Vec<Vec<u8>> = vec![
        b"{definitely not json".to_vec(),
        envelope("OrderTeleported", 1),
        envelope("OrderPlaced", 99),
    ];
    for (n, value) in poison.iter().enumerate() {
        for copy in 0..2 {
            pipeline
                .produce_raw(&format!("poison-{n}-{copy}"), value)
                .await;
        }
    }

    let mut orders = Vec::new();
    for _ in 0..6 {
        orders.push(place().await);
    }
    // A caller that sends its own trace context has it continued.
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let (status, traced) = {
        let body = json!({"customer_id": customer["id"], "lines": [{"product_id": product["id"], "quantity": 1}],
            "shipping_address": {"line1": "1 Way", "city": "Leeds", "postal_code": "LS1", "country": "GB"}});
        let response = http
            .post(format!("{base}/orders"))
            .header(
                "traceparent",
                format!("00-{caller_trace}-00f067aa0ba902b7-01"),
            )
            .json(&body)
            .send()
            .await
            .expect("place");
        (
            response.status().as_u16(),
            response.json::<serde_json::Value>().await.expect("json"),
        )
    };
    assert_eq!(status, 201, "{traced}");
    let traced = traced["order_id"].as_str().expect("order id").to_owned();
    orders.push(traced.clone());
    let search = orderflow_testkit::search_url();
    for order in &orders {
        for path in [format!("orders/{order}"), format!("orders/{order}/status")] {
            // The token wait is 2 s; a 503 then means "not yet", so ask
            // again, but nothing else than 200 or 503 may come back.
            let url = format!("{}/{path}?min_version=1", query.base);
            eventually(&format!("{url} after the poison"), DEADLINE, || async {
                let response = http.get(&url).send().await.ok()?;
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                assert!(status == 200 || status == 503, "{url}: {status} {body}");
                (status == 200).then_some(())
            })
            .await;
        }
        eventually("the order in the search index", DEADLINE, || async {
            let url = format!("{search}/{}/_doc/{order}", pipeline.alias);
            let r = http.get(&url).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await;
    }

    // Every event carries a W3C traceparent although no trace exporter is
    // configured; each command is its own trace, and a caller's trace is
    // continued.
    let events: StreamConsumer = kafka_config()
        .set("group.id", unique_name("poison-trace"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    events.subscribe(&[&pipeline.topic]).expect("subscribe");
    let mut traces = std::collections::HashMap::new();
    while traces.len() < orders.len() {
        let message = tokio::time::timeout(DEADLINE, events.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of our events seen", traces.len()))
            .expect("consume");
        let key = message
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default();
        if !orders.contains(&key) {
            continue;
        }
        let traceparent = message
            .headers()
            .and_then(|h| {
                h.iter()
                    .find(|h| h.key == "traceparent")
                    .and_then(|h| h.value)
            })
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_else(|| panic!("event of order {key} has no traceparent header"));
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert!(
            parts.len() == 4
                && parts[0] == "00"
                && parts[1].len() == 32
                && parts[2].len() == 16
                && parts[1] != "0".repeat(32)
                && parts[2] != "0".repeat(16),
            "not a W3C traceparent: {traceparent}"
        );
        traces.insert(key, parts[1].to_owned());
    }
    assert_eq!(
        traces[&traced], caller_trace,
        "the caller's trace was not continued"
    );
    let distinct: std::collections::HashSet<&String> = traces.values().collect();
    assert_eq!(
        distinct.len(),
        orders.len(),
        "each command is its own trace: {traces:?}"
    );
    // The command itself wrote it (the relay would start a trace otherwise).
    let missing: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE traceparent IS NULL")
        .fetch_one(&pipeline.write.pool)
        .await
        .expect("outbox");
    assert_eq!(missing, 0, "outbox rows without a traceparent");

    // Each projector dead-letters each poison record (six records).
    let consumer: StreamConsumer = kafka_config()
        .set("group.id", unique_name("poison-dlq"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer
        .subscribe(&[&pipeline.dlq_topic()])
        .expect("subscribe");
    let mut letters = Vec::new();
    while letters.len() < 18 {
        let message = tokio::time::timeout(DEADLINE, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} dead letters: {letters:?}", letters.len()))
            .expect("consume");
        let header = |name: &str| {
            message
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == name).and_then(|h| h.value))
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        letters.push((header("dlq_consumer"), header("dlq_reason")));
        let _ = message.payload();
    }
    for projector in ["summary-projector", "search-projector", "status-projector"] {
        let reasons: Vec<&str> = letters
            .iter()
            .filter(|(c, _)| c == projector)
            .map(|(_, r)| r.as_str())
            .collect();
        assert_eq!(reasons.len(), 6, "{projector}: {letters:?}");
        let all = reasons.join(" | ");
        for expected in [
            "malformed envelope",
            "unknown event type",
            "newer than this consumer understands",
        ] {
            assert!(
                all.contains(expected),
                "{projector} gave no {expected:?}: {all}"
            );
        }
    }
    for projector in &projectors {
        let url = format!("{}/readyz", projector.base);
        let status = http.get(&url).send().await.expect("readyz").status();
        assert_eq!(status, 200, "{} not ready after the poison", projector.name);
    }
}
