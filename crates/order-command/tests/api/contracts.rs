//! Every event type the command side emits validates against the published
//! JSON Schemas in `proto/events/`, and decodes through the contract crate.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::helpers::spawn;

const PROTO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto/events");

fn schema(path: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(format!("{PROTO}/{path}"))
        .unwrap_or_else(|e| panic!("reading proto/events/{path}: {e}"));
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("proto/events/{path} is not a valid schema: {e}"))
}

#[tokio::test]
async fn emitted_events_match_the_published_schemas() {
    let app = spawn().await;
    let (delivered, _) = app.placed_order().await;
    app.post(
        &format!("/orders/{delivered}/pay"),
        &json!({"payment_reference": "p-1"}),
    )
    .await;
    app.post(
        &format!("/orders/{delivered}/ship"),
        &json!({"carrier": "UPS", "tracking_number": "1Z"}),
    )
    .await;
    app.send(
        reqwest::Method::POST,
        &format!("/orders/{delivered}/deliver"),
        None,
        &[],
    )
    .await;
    let (cancelled, _) = app.placed_order().await;
    app.post(&format!("/orders/{cancelled}/pay"), &json!({}))
        .await;
    app.post(
        &format!("/orders/{cancelled}/cancel"),
        &json!({"reason": "duplicate"}),
    )
    .await;

    let envelope_schema = schema("envelope.schema.json");
    let mut seen = BTreeSet::new();
    for order in [delivered, cancelled] {
        for envelope in app.outbox(order).await {
            let errors: Vec<String> = envelope_schema
                .iter_errors(&envelope)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "envelope {envelope}: {errors:?}");
            let event_type = envelope["event_type"]
                .as_str()
                .expect("event_type")
                .to_owned();
            let version = envelope["schema_version"].as_u64().expect("schema_version");
            let payload_schema = schema(&format!("v{version}/{event_type}.schema.json"));
            let errors: Vec<String> = payload_schema
                .iter_errors(&envelope["payload"])
                .map(|e| e.to_string())
                .collect();
            assert!(
                errors.is_empty(),
                "{event_type} payload {}: {errors:?}",
                envelope["payload"]
            );

            let typed: orderflow_contracts::Envelope =
                serde_json::from_value(envelope.clone()).expect("envelope decodes");
            let decoded = orderflow_contracts::decode(&typed).expect("payload decodes");
            assert_eq!(decoded.event_type(), event_type);
            seen.insert(event_type);
        }
    }
    let all: BTreeSet<String> = [
        "OrderPlaced",
        "OrderPaid",
        "OrderShipped",
        "OrderDelivered",
        "OrderCancelled",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(seen, all, "the test must exercise every event type");
}

#[test]
fn schemas_refuse_what_consumers_could_not_read() {
    let placed = schema("v1/OrderPlaced.schema.json");
    let bad = json!({"order_id": "not-a-uuid", "lines": [], "total_minor": 1.5});
    assert!(!placed.is_valid(&bad));
    let envelope = schema("envelope.schema.json");
    assert!(!envelope.is_valid(&json!({"event_type": "OrderPlaced"})));
}
