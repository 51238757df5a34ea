use serde_json::json;
use uuid::Uuid;

use crate::world::{get, shop, world};

#[tokio::test]
async fn a_read_with_the_commands_version_never_sees_an_older_state() {
    let shop = shop().await;
    let w = world();
    for _ in 0..10 {
        let (order, v1) = shop.order().await;
        // Immediately: never a 404, never an older version.
        let read = get(&format!("{}/orders/{order}?min_version={v1}", w.query)).await;
        assert_eq!(read.status, 200, "{}", read.body);
        assert!(read.body["version"].as_i64() >= Some(v1));
        assert_eq!(read.header("orderflow-source"), Some("summary"));
        assert_eq!(
            read.header("orderflow-version"),
            Some(read.body["version"].to_string().as_str())
        );

        let v2 = shop.command(&order, "pay", json!({})).await;
        let read = get(&format!("{}/orders/{order}?min_version={v2}", w.query)).await;
        assert_eq!(read.status, 200, "{}", read.body);
        assert_eq!(read.body["status"], "paid");
        assert_eq!(read.body["version"], v2);

        let status = get(&format!(
            "{}/orders/{order}/status?min_version={v2}",
            w.query
        ))
        .await;
        assert_eq!(status.status, 200, "{}", status.body);
        assert_eq!(status.body["status"], "paid");
        assert!(status.body["version"].as_i64() >= Some(v2));
    }
}

#[tokio::test]
async fn strong_consistency_reads_the_write_database() {
    let shop = shop().await;
    let w = world();
    let (order, _) = shop.order().await;
    let v2 = shop
        .command(&order, "pay", json!({"payment_reference": "strong-1"}))
        .await;
    let read = get(&format!("{}/orders/{order}?consistency=strong", w.query)).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.header("orderflow-source"), Some("write-db"));
    assert_eq!(
        read.body["version"], v2,
        "the write database is never behind"
    );
    assert_eq!(read.body["payment_reference"], "strong-1");
    get(&format!(
        "{}/orders/{}?consistency=strong",
        w.query,
        Uuid::now_v7()
    ))
    .await
    .assert_problem(404, "not-found");
}

#[tokio::test]
async fn a_version_that_does_not_arrive_in_time_is_a_503_with_a_hint() {
    let shop = shop().await;
    let w = world();
    let (order, _) = shop.order().await;
    let started = std::time::Instant::now();
    let read = get(&format!("{}/orders/{order}?min_version=99", w.query)).await;
    read.assert_problem(503, "not-yet-visible");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(5),
        "waits the configured bound first"
    );
    assert!(read.header("retry-after").is_some());
    assert!(
        read.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("accepted"),
        "{}",
        read.body
    );
    assert_eq!(read.body["wanted_version"], 99);

    // A token for an order the read model has never seen: 503, not 404.
    let unknown = get(&format!(
        "{}/orders/{}?min_version=1",
        w.query,
        Uuid::now_v7()
    ))
    .await;
    unknown.assert_problem(503, "not-yet-visible");
    let status = get(&format!(
        "{}/orders/{}/status?min_version=1",
        w.query,
        Uuid::now_v7()
    ))
    .await;
    status.assert_problem(503, "not-yet-visible");
}

#[tokio::test]
async fn level0_endpoint_computes_the_same_summary_by_joins() {
    let shop = shop().await;
    let w = world();
    let (order, _) = shop.order().await;
    let v = shop.command(&order, "pay", json!({})).await;
    let projected = get(&format!("{}/orders/{order}?min_version={v}", w.query)).await;
    let joined = get(&format!("{}/level0/orders/{order}", w.query)).await;
    assert_eq!(joined.status, 200, "{}", joined.body);
    let strip = |mut v: serde_json::Value| {
        // Timestamps are the same instants, written by different serialisers.
        for key in ["placed_at", "paid_at", "updated_at"] {
            let t = v[key].as_str().map(|s| {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                    .expect("time")
            });
            v[key] = json!(t.map(|t| t.unix_timestamp_nanos().to_string()));
        }
        v
    };
    assert_eq!(strip(projected.body), strip(joined.body));
}
