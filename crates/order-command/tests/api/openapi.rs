//! The checked-in OpenAPI document must be what the code generates.
//! Regenerate with `UPDATE_OPENAPI=1 cargo test -p order-command --test api openapi`.

const CHECKED_IN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../proto/openapi/order-command.json"
);

#[test]
fn checked_in_openapi_is_current() {
    let generated = order_command::openapi::json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::create_dir_all(std::path::Path::new(CHECKED_IN).parent().expect("parent"))
            .expect("proto/openapi");
        std::fs::write(CHECKED_IN, &generated).expect("write openapi");
    }
    let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
    assert!(
        checked_in == generated,
        "proto/openapi/order-command.json is stale; regenerate it with \
         `UPDATE_OPENAPI=1 cargo test -p order-command --test api openapi`"
    );
}

#[test]
fn every_route_is_documented() {
    let doc: serde_json::Value =
        serde_json::from_str(&order_command::openapi::json()).expect("valid json");
    for path in [
        "/customers",
        "/customers/{id}",
        "/products",
        "/products/{id}",
        "/products/{id}/stock",
        "/orders",
        "/orders/{id}/pay",
        "/orders/{id}/ship",
        "/orders/{id}/deliver",
        "/orders/{id}/cancel",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} is missing from the OpenAPI document"
        );
    }
}
