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

/// `OrderPlaced` is written at schema version 2 from the upgrade on: the
/// sales channel and the region the client gave are in the event and in the
/// write model; a client that gives neither (written before they existed)
/// still places orders, and the event leaves them out instead of guessing.
#[tokio::test]
async fn order_placed_is_v2_and_carries_channel_and_region_only_when_given() {
    let app = spawn().await;
    let customer = app.customer().await;
    let product = app.product(1250, 100).await;
    let mut body = crate::helpers::order_body(customer, &[(product, 1)]);
    body["sales_channel"] = json!("mobile_app");
    body["shipping_address"]["line2"] = json!("Flat 2");
    body["shipping_address"]["region"] = json!("gb-eng");
    let with = app.post("/orders", &body).await;
    assert_eq!(with.status.as_u16(), 201, "{}", with.body);
    let old_client = app.place(customer, &[(product, 1)]).await;
    assert_eq!(old_client.status.as_u16(), 201, "{}", old_client.body);

    let v2 = schema("v2/OrderPlaced.schema.json");
    let mut payloads = Vec::new();
    for order in [with.id("order_id"), old_client.id("order_id")] {
        let first = app
            .outbox(order)
            .await
            .into_iter()
            .next()
            .expect("an outbox row");
        assert_eq!(first["event_type"], "OrderPlaced");
        assert_eq!(first["schema_version"], 2, "OrderPlaced is written as v2");
        let errors: Vec<String> = v2
            .iter_errors(&first["payload"])
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", first["payload"]);
        payloads.push(first["payload"].clone());
    }
    let given = &payloads[0];
    assert_eq!(given["sales_channel"], "mobile_app");
    assert_eq!(given["shipping_address"]["region"], "GB-ENG");
    assert_eq!(
        given["shipping_address"]["lines"],
        json!(["1 Analytical Way", "Flat 2"])
    );
    let absent = &payloads[1];
    assert!(absent.get("sales_channel").is_none(), "{absent}");
    assert!(
        absent["shipping_address"].get("region").is_none(),
        "{absent}"
    );

    let stored: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT sales_channel, shipping_address->>'region' FROM orders WHERE id = ANY($1) ORDER BY sales_channel NULLS LAST",
    )
    .bind(vec![with.id("order_id"), old_client.id("order_id")])
    .fetch_all(&app.db.pool)
    .await
    .expect("orders");
    assert_eq!(
        stored,
        vec![
            (Some("mobile_app".into()), Some("GB-ENG".into())),
            (None, None)
        ]
    );
}
