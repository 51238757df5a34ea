use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use crate::world::{get, shop, world};

#[tokio::test]
async fn lists_filter_and_paginate_by_keyset() {
    let shop = shop().await;
    let w = world();
    let mut orders = Vec::new();
    for _ in 0..25 {
        orders.push(shop.order().await);
    }
    let mut paid = Vec::new();
    for (order, _) in orders.iter().take(5) {
        paid.push((order.clone(), shop.command(order, "pay", json!({})).await));
    }
    // Make sure the last writes are visible before listing.
    for (order, v) in orders.iter().skip(5).chain(paid.iter()) {
        assert_eq!(
            get(&format!("{}/orders/{order}?min_version={v}", w.query))
                .await
                .status,
            200
        );
    }

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = format!("{}/orders?customer_id={}&limit=10", w.query, shop.customer);
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page = get(&url).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let items = page.body["items"].as_array().expect("items").clone();
        pages += 1;
        seen.extend(items.iter().map(|i| {
            (
                i["placed_at"].as_str().unwrap_or_default().to_owned(),
                i["order_id"].as_str().unwrap_or_default().to_owned(),
            )
        }));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 25);
    let distinct: HashSet<_> = seen.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(distinct.len(), 25, "no order twice across pages");
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first");

    let paid_page = get(&format!(
        "{}/orders?customer_id={}&status=paid&limit=100",
        w.query, shop.customer
    ))
    .await;
    let ids: HashSet<String> = paid_page.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["order_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        ids,
        paid.iter().map(|(o, _)| o.clone()).collect::<HashSet<_>>()
    );

    // A time window: from the 11th newest (inclusive) to the newest (exclusive).
    let (from, to) = (&seen[10].0, &seen[0].0);
    let window = get(&format!(
        "{}/orders?customer_id={}&placed_from={}&placed_to={}&limit=100",
        w.query,
        shop.customer,
        urlencode(from),
        urlencode(to)
    ))
    .await;
    assert_eq!(window.status, 200, "{}", window.body);
    assert_eq!(window.body["items"].as_array().map(Vec::len), Some(10));

    let empty = get(&format!(
        "{}/orders?customer_id={}&status=delivered",
        w.query, shop.customer
    ))
    .await;
    assert_eq!(empty.body["items"], json!([]));
    assert_eq!(empty.body["next_cursor"], json!(null));
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn search_finds_by_text_and_respects_filters() {
    let shop = shop().await;
    let w = world();
    let (a, _) = shop.order().await;
    let (b, _) = shop.order().await;
    let shipped = shop.command(&b, "pay", json!({})).await;
    let _ = shipped;
    let tracked = shop
        .command(
            &b,
            "ship",
            json!({"carrier": "DHL", "tracking_number": format!("TRK{}", shop.tag.to_uppercase())}),
        )
        .await;
    let _ = tracked;

    let by_product = orderflow_testkit::eventually(
        "the search index to have both orders",
        Duration::from_secs(60),
        || async {
            let r = get(&format!(
                "{}/orders/search?q=zanzibar+teapot+{}",
                w.query, shop.tag
            ))
            .await;
            let n = r.body["items"].as_array().map(Vec::len).unwrap_or(0);
            let shipped = r.body["items"]
                .as_array()?
                .iter()
                .any(|i| i["status"] == "shipped");
            (n == 2 && shipped).then_some(r)
        },
    )
    .await;
    assert_eq!(by_product.header("orderflow-source"), Some("search"));

    let by_customer = get(&format!("{}/orders/search?q=Quinn+{}", w.query, shop.tag)).await;
    assert_eq!(
        by_customer.body["items"].as_array().map(Vec::len),
        Some(2),
        "{}",
        by_customer.body
    );
    let by_email = get(&format!(
        "{}/orders/search?q=quinn-{}@example.com",
        w.query, shop.tag
    ))
    .await;
    assert_eq!(
        by_email.body["items"].as_array().map(Vec::len),
        Some(2),
        "{}",
        by_email.body
    );
    let by_tracking = get(&format!(
        "{}/orders/search?q=TRK{}",
        w.query,
        shop.tag.to_uppercase()
    ))
    .await;
    let items = by_tracking.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{}", by_tracking.body);
    assert_eq!(items[0]["order_id"], json!(b));
    let by_sku = get(&format!("{}/orders/search?q=Q-{}", w.query, shop.tag)).await;
    assert_eq!(
        by_sku.body["items"].as_array().map(Vec::len),
        Some(2),
        "{}",
        by_sku.body
    );

    let filtered = get(&format!(
        "{}/orders/search?q=zanzibar+{}&status=placed",
        w.query, shop.tag
    ))
    .await;
    let items = filtered.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["order_id"], json!(a));

    // Query syntax in the text is just text: it cannot widen the filter.
    for hostile in [
        "*",
        "status:shipped OR *",
        "\"zanzibar\" OR (customer_id:*)",
        "zanzibar) OR (status:*",
    ] {
        let r = get(&format!(
            "{}/orders/search?customer_id={}&status=placed&q={}",
            w.query,
            shop.customer,
            urlencode_all(hostile)
        ))
        .await;
        assert_eq!(r.status, 200, "{hostile}: {}", r.body);
        for item in r.body["items"].as_array().expect("items") {
            assert_eq!(item["status"], "placed", "{hostile} escaped the filter");
            assert_eq!(item["customer_id"], json!(shop.customer));
        }
    }

    let page1 = get(&format!(
        "{}/orders/search?q=zanzibar+{}&limit=1",
        w.query, shop.tag
    ))
    .await;
    let cursor = page1.body["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let page2 = get(&format!(
        "{}/orders/search?q=zanzibar+{}&limit=1&cursor={cursor}",
        w.query, shop.tag
    ))
    .await;
    assert_eq!(page2.body["items"].as_array().map(Vec::len), Some(1));
    assert_ne!(
        page1.body["items"][0]["order_id"],
        page2.body["items"][0]["order_id"]
    );
    assert_eq!(page2.body["next_cursor"], json!(null));
}

pub fn urlencode_all(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
