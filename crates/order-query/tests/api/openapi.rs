//! The checked-in OpenAPI document must be what the code generates.
//! Regenerate with `UPDATE_OPENAPI=1 cargo test -p order-query --test api openapi`.

const CHECKED_IN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../proto/openapi/order-query.json"
);

#[test]
fn checked_in_openapi_is_current() {
    let generated = order_query::openapi::json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(CHECKED_IN, &generated).expect("write openapi");
    }
    let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
    assert!(
        checked_in == generated,
        "proto/openapi/order-query.json is stale; regenerate it with \
         `UPDATE_OPENAPI=1 cargo test -p order-query --test api openapi`"
    );
}
