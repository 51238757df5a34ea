use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::world::{Lagging, get, shop, world};

/// Read your own writes, with the read model made to lag: the private
/// pipeline's projectors are stopped before the command, so the summary and
/// the cache still hold the old version when the token read arrives. A read
/// that ignored `min_version` would answer that old version and fail here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_with_the_commands_version_never_sees_an_older_state() {
    let shop = shop().await;
    let mut lagging = Lagging::start().await;
    let q = lagging.query.clone();
    let (order, v1) = shop.order().await;
    // The private read side carries the order first (each read waits 1 s).
    for path in [
        format!("/orders/{order}"),
        format!("/orders/{order}/status"),
    ] {
        orderflow_testkit::eventually(
            "the private pipeline to carry the order",
            Duration::from_secs(120),
            || {
                let url = format!("{q}{path}?min_version={v1}");
                async move { (get(&url).await.status == 200).then_some(()) }
            },
        )
        .await;
    }

    lagging.stop_projectors().await;
    let v2 = shop.command(&order, "pay", json!({})).await;
    assert!(v2 > v1);
    // The read models really lag: without the token, the old state.
    let stale = get(&format!("{q}/orders/{order}")).await;
    assert_eq!(stale.status, 200, "{}", stale.body);
    assert_eq!(stale.body["version"], v1, "{}", stale.body);
    let stale = get(&format!("{q}/orders/{order}/status")).await;
    assert_eq!(stale.body["version"], v1, "{}", stale.body);

    // With the token, never the old state: the change was accepted (the write
    // model has it) and is not visible yet, so after the bound it is a 503
    // with Retry-After and a hint.
    for path in [
        format!("/orders/{order}"),
        format!("/orders/{order}/status"),
    ] {
        let read = get(&format!("{q}{path}?min_version={v2}")).await;
        read.assert_problem(503, "not-yet-visible");
        assert!(read.header("retry-after").is_some(), "{path}");
        assert_eq!(read.body["wanted_version"], v2, "{}", read.body);
        assert_eq!(read.body["visible_version"], v1, "{}", read.body);
        assert!(
            read.body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("accepted"),
            "{}",
            read.body
        );
    }

    // Once the projectors catch up, the same reads answer the new state;
    // until then every answer is that 503, never the older version.
    lagging.start_projectors();
    for path in [
        format!("/orders/{order}"),
        format!("/orders/{order}/status"),
    ] {
        let read = orderflow_testkit::eventually(
            "the projectors to catch up",
            Duration::from_secs(120),
            || {
                let url = format!("{q}{path}?min_version={v2}");
                async move {
                    let read = get(&url).await;
                    if read.status != 200 {
                        read.assert_problem(503, "not-yet-visible");
                        return None;
                    }
                    Some(read)
                }
            },
        )
        .await;
        assert_eq!(read.body["version"], v2, "{path}: {}", read.body);
        assert_eq!(read.body["status"], "paid", "{path}: {}", read.body);
        assert_eq!(
            read.header("orderflow-version"),
            Some(v2.to_string().as_str())
        );
    }
    let read = get(&format!("{q}/orders/{order}?min_version={v2}")).await;
    assert_eq!(read.header("orderflow-source"), Some("summary"));
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

/// Tokens that can never become visible are not told to retry: once the
/// bound has passed, the write model says whether the order exists (404 if
/// not) and whether it ever reached the version (422 `version-not-reached`
/// if not). The 503 for a change still on its way is in
/// `a_read_with_the_commands_version_never_sees_an_older_state`.
#[tokio::test]
async fn a_token_the_write_model_never_issued_is_404_or_422_not_503() {
    let shop = shop().await;
    let w = world();
    let (order, v1) = shop.order().await;
    let unknown = Uuid::now_v7();
    let beyond = v1 + 101;
    let q = &w.query;
    let urls = [
        format!("{q}/orders/{unknown}?min_version=102"),
        format!("{q}/orders/{unknown}/status?min_version=102"),
        format!("{q}/orders/{order}?min_version={beyond}"),
        format!("{q}/orders/{order}/status?min_version={beyond}"),
    ];
    let (missing, missing_status, ahead, ahead_status) =
        futures::join!(get(&urls[0]), get(&urls[1]), get(&urls[2]), get(&urls[3]));
    missing.assert_problem(404, "not-found");
    missing_status.assert_problem(404, "not-found");
    for read in [ahead, ahead_status] {
        read.assert_problem(422, "version-not-reached");
        assert!(read.header("retry-after").is_none(), "{}", read.body);
        assert_eq!(read.body["wanted_version"], beyond, "{}", read.body);
        assert_eq!(read.body["current_version"], v1, "{}", read.body);
        assert!(
            read.body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains(&format!("latest version ({v1})")),
            "{}",
            read.body
        );
    }
    // A strong read checks the token against the write model at once.
    get(&format!(
        "{}/orders/{order}?consistency=strong&min_version={beyond}",
        w.query
    ))
    .await
    .assert_problem(422, "version-not-reached");
    let strong = get(&format!(
        "{}/orders/{order}?consistency=strong&min_version={v1}",
        w.query
    ))
    .await;
    assert_eq!(strong.status, 200, "{}", strong.body);
}

/// Every field of the summary, as the by-id read and the list page decode
/// it, against the write model's joins: one order through shipping and
/// delivery (carrier, tracking number), one cancelled after payment (reason,
/// refund), so no column of the row can be dropped or swapped unseen.
#[tokio::test]
async fn level0_endpoint_computes_the_same_summary_by_joins() {
    let shop = shop().await;
    let w = world();
    let (delivered, _) = shop.order().await;
    shop.command(
        &delivered,
        "pay",
        json!({"payment_reference": format!("P-{}", shop.tag)}),
    )
    .await;
    shop.command(
        &delivered,
        "ship",
        json!({"carrier": "UPS", "tracking_number": format!("T{}", shop.tag.to_uppercase())}),
    )
    .await;
    let v_delivered = shop.command(&delivered, "deliver", json!({})).await;
    let (cancelled, _) = shop.order().await;
    shop.command(&cancelled, "pay", json!({})).await;
    let v_cancelled = shop
        .command(&cancelled, "cancel", json!({"reason": "wrong size"}))
        .await;
    let strip = |mut v: serde_json::Value| {
        // Timestamps are the same instants, written by different serialisers.
        for key in [
            "placed_at",
            "paid_at",
            "shipped_at",
            "delivered_at",
            "cancelled_at",
            "updated_at",
        ] {
            let t = v[key].as_str().map(|s| {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                    .expect("time")
            });
            v[key] = json!(t.map(|t| t.unix_timestamp_nanos().to_string()));
        }
        v
    };
    let mut projected = Vec::new();
    for (order, v) in [(&delivered, v_delivered), (&cancelled, v_cancelled)] {
        let by_id = get(&format!("{}/orders/{order}?min_version={v}", w.query)).await;
        assert_eq!(by_id.status, 200, "{}", by_id.body);
        let joined = get(&format!("{}/level0/orders/{order}", w.query)).await;
        assert_eq!(joined.status, 200, "{}", joined.body);
        assert_eq!(strip(by_id.body.clone()), strip(joined.body));
        projected.push(by_id.body);
    }
    assert_eq!(
        projected[0]["tracking_number"],
        format!("T{}", shop.tag.to_uppercase())
    );
    assert_eq!(projected[1]["cancel_reason"], "wrong size");
    assert!(
        projected[1]["refund_minor"].as_i64().is_some(),
        "{}",
        projected[1]
    );
    // The list page decodes the same rows: its items are the by-id reads.
    let page = get(&format!(
        "{}/orders?customer_id={}&limit=100",
        w.query, shop.customer
    ))
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let items = page.body["items"].as_array().expect("items");
    for read in &projected {
        let listed = items
            .iter()
            .find(|i| i["order_id"] == read["order_id"])
            .unwrap_or_else(|| panic!("{} not in its customer's list", read["order_id"]));
        assert_eq!(listed, read);
    }
}
