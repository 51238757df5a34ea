//! The upcast on its own: every v1 example of the published contract turns
//! into a payload valid under today's schema, with nothing invented, and
//! versions beyond what this crate knows are refused as "newer schema".

use serde_json::{Value, json};
use uuid::Uuid;

use crate::event::{CURRENT_VERSIONS, CurrentEvent};
use crate::{Envelope, decode, decode_up_to};

const PROTO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto/events");

fn schema_file(path: &str) -> Value {
    let text = std::fs::read_to_string(format!("{PROTO}/{path}"))
        .unwrap_or_else(|e| panic!("reading proto/events/{path}: {e}"));
    serde_json::from_str(&text).expect("schema is JSON")
}

fn validator(path: &str) -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema_file(path))
        .unwrap_or_else(|e| panic!("proto/events/{path}: {e}"))
}

fn envelope(event_type: &str, schema_version: u32, payload: Value) -> Envelope {
    let order = payload["order_id"]
        .as_str()
        .and_then(|s| s.parse::<Uuid>().ok())
        .expect("payload names its order");
    Envelope {
        event_id: Uuid::now_v7(),
        event_type: event_type.into(),
        schema_version,
        aggregate_type: "order".into(),
        aggregate_id: order,
        aggregate_version: 1,
        occurred_at: time::OffsetDateTime::UNIX_EPOCH,
        correlation_id: Uuid::nil(),
        causation_id: Uuid::nil(),
        payload,
    }
}

fn first_example(path: &str) -> Value {
    schema_file(path)["examples"][0].clone()
}

fn placed(event: CurrentEvent) -> crate::v2::OrderPlaced {
    match event {
        CurrentEvent::Placed(p) => p,
        other => panic!("expected OrderPlaced, got {other:?}"),
    }
}

#[test]
fn a_v1_order_placed_becomes_a_valid_v2_payload_with_nothing_invented() {
    let v1 = first_example("v1/OrderPlaced.schema.json");
    let current = placed(decode(&envelope("OrderPlaced", 1, v1.clone())).expect("v1 decodes"));

    let payload = CurrentEvent::Placed(current.clone()).to_payload();
    let errors: Vec<String> = validator("v2/OrderPlaced.schema.json")
        .iter_errors(&payload)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "upcast payload {payload}: {errors:?}");

    assert_eq!(
        current.shipping_address.lines,
        vec![v1["shipping_address"]["line1"].as_str().expect("line1")]
    );
    assert_eq!(current.shipping_address.region, None, "no region invented");
    assert_eq!(current.sales_channel, None, "no sales channel invented");
    assert!(payload["shipping_address"].get("region").is_none());
    assert!(payload.get("sales_channel").is_none());
    // Everything v1 said is kept as it was.
    for field in [
        "order_id",
        "customer",
        "lines",
        "currency",
        "total_minor",
        "placed_at",
    ] {
        assert_eq!(payload[field], v1[field], "{field}");
    }
    for field in ["city", "postal_code", "country"] {
        assert_eq!(
            payload["shipping_address"][field],
            v1["shipping_address"][field]
        );
    }
}

#[test]
fn line2_follows_line1_and_an_absent_one_adds_no_line() {
    let mut v1 = first_example("v1/OrderPlaced.schema.json");
    v1["shipping_address"]["line2"] = json!("Flat 3");
    let current = placed(decode(&envelope("OrderPlaced", 1, v1.clone())).expect("decodes"));
    assert_eq!(
        current.shipping_address.lines,
        vec!["12 St James's Square".to_owned(), "Flat 3".to_owned()]
    );
}

#[test]
fn a_v1_event_and_the_v2_event_it_stands_for_decode_to_the_same_value() {
    let v1 = first_example("v1/OrderPlaced.schema.json");
    let mut v2 = v1.clone();
    v2["shipping_address"] = json!({
        "lines": [v1["shipping_address"]["line1"]],
        "city": v1["shipping_address"]["city"],
        "postal_code": v1["shipping_address"]["postal_code"],
        "country": v1["shipping_address"]["country"],
    });
    assert!(validator("v2/OrderPlaced.schema.json").is_valid(&v2));
    assert_eq!(
        decode(&envelope("OrderPlaced", 1, v1)).expect("v1"),
        decode(&envelope("OrderPlaced", 2, v2)).expect("v2")
    );
}

#[test]
fn every_published_example_of_every_version_decodes() {
    for (event_type, current) in CURRENT_VERSIONS {
        for version in 1..=current {
            let path = format!("v{version}/{event_type}.schema.json");
            let examples = schema_file(&path)["examples"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert!(!examples.is_empty(), "{path} has examples");
            for example in examples {
                let event = decode(&envelope(event_type, version, example.clone()))
                    .unwrap_or_else(|e| panic!("{path} example {example}: {e}"));
                assert_eq!(event.event_type(), event_type);
                // What decode returns is written at today's version and
                // valid under today's schema.
                let now = format!("v{}/{event_type}.schema.json", event.schema_version());
                assert!(
                    validator(&now).is_valid(&event.to_payload()),
                    "{path} example upcast to {now}"
                );
            }
        }
    }
}

#[test]
fn the_v2_fields_are_read_when_present() {
    let example = first_example("v2/OrderPlaced.schema.json");
    let current = placed(decode(&envelope("OrderPlaced", 2, example)).expect("decodes"));
    assert_eq!(current.sales_channel.as_deref(), Some("web"));
    assert_eq!(current.shipping_address.region.as_deref(), Some("GB-ENG"));
    assert_eq!(current.shipping_address.lines.len(), 2);
}

#[test]
fn a_version_newer_than_known_is_refused_as_newer_schema() {
    let example = first_example("v2/OrderPlaced.schema.json");
    let err = decode(&envelope("OrderPlaced", 3, example.clone())).expect_err("v3 is unknown");
    assert!(err.to_string().starts_with("newer schema"), "{err}");
    let paid = first_example("v1/OrderPaid.schema.json");
    let err = decode(&envelope("OrderPaid", 2, paid)).expect_err("OrderPaid v2 is unknown");
    assert!(err.to_string().starts_with("newer schema"), "{err}");

    // A consumer of the release before v2 refuses v2 the same way...
    let err =
        decode_up_to(&envelope("OrderPlaced", 2, example.clone()), 1).expect_err("capped at 1");
    assert!(err.to_string().contains("newer schema"), "{err}");
    assert!(err.to_string().contains("up to 1"), "{err}");
    // ...and still reads v1.
    let v1 = first_example("v1/OrderPlaced.schema.json");
    assert!(decode_up_to(&envelope("OrderPlaced", 1, v1), 1).is_ok());
}

#[test]
fn unknown_fields_are_ignored_and_version_zero_is_refused() {
    let mut example = first_example("v2/OrderPlaced.schema.json");
    example["gift_wrap"] = json!(true);
    example["shipping_address"]["what3words"] = json!("index.home.raft");
    assert!(decode(&envelope("OrderPlaced", 2, example.clone())).is_ok());
    assert!(decode(&envelope("OrderPlaced", 0, example)).is_err());
}

#[test]
fn a_v1_address_is_not_read_as_v2_nor_the_other_way() {
    // The versions are not interchangeable: the header decides the shape.
    let v1 = first_example("v1/OrderPlaced.schema.json");
    let v2 = first_example("v2/OrderPlaced.schema.json");
    assert!(decode(&envelope("OrderPlaced", 2, v1)).is_err());
    assert!(decode(&envelope("OrderPlaced", 1, v2)).is_err());
}
