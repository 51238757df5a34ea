//! Hostile and malformed reads: each a 4xx problem, never a 5xx.
//! `scripts/check-api` (schemathesis) covers the published parameter rules
//! at random; these are the cases named.

use uuid::Uuid;

use crate::lists::urlencode_all;
use crate::world::{get, world};

#[tokio::test]
async fn hostile_reads_get_4xx_problems() {
    let w = world();
    let q = &w.query;
    let big = "x".repeat(10_000);
    let cases: Vec<(String, u16, &str)> = vec![
        (format!("{q}/orders/not-a-uuid"), 400, "invalid-id"),
        (
            format!("{q}/orders/{}%27%20OR%201=1", Uuid::now_v7()),
            400,
            "invalid-id",
        ),
        (
            format!("{q}/orders/{}/status", "1".repeat(300)),
            400,
            "invalid-id",
        ),
        (
            format!("{q}/orders?limit=1000000"),
            400,
            "invalid-parameter",
        ),
        (format!("{q}/orders?limit=0"), 400, "invalid-parameter"),
        (format!("{q}/orders?limit=-5"), 400, "invalid-parameter"),
        (format!("{q}/orders?limit=ten"), 400, "invalid-parameter"),
        (format!("{q}/orders?status=lost"), 400, "invalid-parameter"),
        (
            format!("{q}/orders?customer_id=42"),
            400,
            "invalid-parameter",
        ),
        (
            format!("{q}/orders?placed_from=yesterday"),
            400,
            "invalid-parameter",
        ),
        (format!("{q}/orders?cursor=abc"), 400, "invalid-parameter"),
        (
            format!(
                "{q}/orders?cursor=99999999999999999999999.{}",
                Uuid::now_v7()
            ),
            400,
            "invalid-parameter",
        ),
        // Only the published cursor pattern: what the API itself returns.
        (
            format!("{q}/orders?cursor=-5.{}", Uuid::now_v7().simple()),
            400,
            "invalid-parameter",
        ),
        (
            format!("{q}/orders?cursor=5.{}", Uuid::now_v7()),
            400,
            "invalid-parameter",
        ),
        (format!("{q}/orders?sort=name"), 400, "invalid-parameter"),
        (
            format!("{q}/orders?limit=1&limit=2"),
            400,
            "invalid-parameter",
        ),
        (
            format!("{q}/orders/search?q={big}"),
            400,
            "invalid-parameter",
        ),
        (
            format!("{q}/orders/search?q={}", urlencode_all(&"é".repeat(201))),
            400,
            "invalid-parameter",
        ),
        (
            format!("{q}/orders/search?q=a%00b"),
            400,
            "invalid-parameter",
        ),
        (
            format!("{q}/orders/{}?min_version=0", Uuid::now_v7()),
            400,
            "invalid-parameter",
        ),
        (
            format!(
                "{q}/orders/{}?min_version=9223372036854775808",
                Uuid::now_v7()
            ),
            400,
            "invalid-parameter",
        ),
        (
            format!("{q}/orders/{}?consistency=linearizable", Uuid::now_v7()),
            400,
            "invalid-parameter",
        ),
        (format!("{q}/orders/{}", Uuid::now_v7()), 404, "not-found"),
        (format!("{q}/nothing-here"), 404, "not-found"),
    ];
    for (url, status, slug) in cases {
        let reply = get(&url).await;
        assert!(
            reply.status.is_client_error(),
            "{url}: {} {}",
            reply.status,
            reply.body
        );
        reply.assert_problem(status, slug);
    }
    // Query-syntax characters are accepted as plain text.
    for text in [
        "*",
        "?",
        "a AND b",
        "(",
        "\"",
        "\\",
        "/regex/",
        "name:*",
        "{\"match_all\":{}}",
    ] {
        let reply = get(&format!("{q}/orders/search?q={}", urlencode_all(text))).await;
        assert_eq!(reply.status, 200, "{text:?}: {}", reply.body);
    }
}
