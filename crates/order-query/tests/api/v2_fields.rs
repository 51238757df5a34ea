//! OrderPlaced v2's facts through the whole pipeline: the summary and the
//! search document show the sales channel and the region the client gave,
//! an order without them shows them as absent (null channel, no region),
//! and search filters by both.

use std::time::Duration;

use serde_json::{Value, json};

use crate::world::{get, post, shop, world};

#[tokio::test]
async fn summaries_show_channel_and_region_and_search_filters_by_them() {
    let shop = shop().await;
    let w = world();
    let body = |extra: Value| {
        let mut body = json!({"customer_id": shop.customer, "lines": [{"product_id": shop.product, "quantity": 1}],
            "shipping_address": {"line1": "4 Princes Street", "city": "Edinburgh", "postal_code": "EH2 2ER", "country": "GB"}});
        if let Value::Object(extra) = extra {
            for (k, v) in extra {
                if k == "region" {
                    body["shipping_address"]["region"] = v;
                } else {
                    body[k] = v;
                }
            }
        }
        body
    };
    let with = post(
        &format!("{}/orders", w.command),
        body(json!({"sales_channel": "store", "region": "gb-sct"})),
    )
    .await;
    assert_eq!(with.status, 201, "{}", with.body);
    let without = post(&format!("{}/orders", w.command), body(json!({}))).await;
    assert_eq!(without.status, 201, "{}", without.body);
    let with_id = with.body["order_id"].as_str().expect("id").to_owned();
    let without_id = without.body["order_id"].as_str().expect("id").to_owned();

    let summary = get(&format!("{}/orders/{with_id}?min_version=1", w.query)).await;
    assert_eq!(summary.status, 200, "{}", summary.body);
    assert_eq!(summary.body["sales_channel"], "store");
    assert_eq!(summary.body["shipping_address"]["region"], "GB-SCT");
    assert_eq!(
        summary.body["shipping_address"]["lines"],
        json!(["4 Princes Street"])
    );
    let plain = get(&format!("{}/orders/{without_id}?min_version=1", w.query)).await;
    assert_eq!(plain.status, 200, "{}", plain.body);
    assert!(plain.body["sales_channel"].is_null(), "{}", plain.body);
    assert!(
        plain.body["shipping_address"].get("region").is_none(),
        "{}",
        plain.body
    );
    // The write model's own view (level 0) says the same.
    let strong = get(&format!("{}/orders/{with_id}?consistency=strong", w.query)).await;
    assert_eq!(strong.body["sales_channel"], "store", "{}", strong.body);
    assert_eq!(
        strong.body["shipping_address"],
        summary.body["shipping_address"]
    );

    let tag = shop.tag.clone();
    let found = |params: &str| {
        let url = format!("{}/orders/search?q={tag}&{params}", w.query);
        async move {
            let r = get(&url).await;
            assert_eq!(r.status, 200, "{}", r.body);
            let mut ids: Vec<String> = r.body["items"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|i| i["order_id"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            ids.sort();
            ids
        }
    };
    orderflow_testkit::eventually(
        "the search index to have both orders",
        Duration::from_secs(60),
        || async { (found("limit=10").await.len() == 2).then_some(()) },
    )
    .await;
    assert_eq!(found("region=GB-SCT").await, vec![with_id.clone()]);
    assert_eq!(found("region=gb-sct").await, vec![with_id.clone()]);
    assert!(found("region=GB-ENG").await.is_empty());
    assert_eq!(found("sales_channel=store").await, vec![with_id.clone()]);
    assert!(found("sales_channel=web").await.is_empty());

    for bad in ["region=Scotland", "sales_channel=fax"] {
        let r = get(&format!("{}/orders/search?{bad}", w.query)).await;
        r.assert_problem(400, "invalid-parameter");
    }
}
