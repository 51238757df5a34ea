use std::time::Duration;

use futures::StreamExt as _;
use redis::AsyncCommands as _;
use serde_json::json;

use crate::world::{get, shop, world};

#[tokio::test]
async fn status_comes_from_the_cache_and_falls_back_to_the_summary() {
    let shop = shop().await;
    let w = world();
    let (order, _) = shop.order().await;
    let v = shop.command(&order, "pay", json!({})).await;
    let cached = get(&format!(
        "{}/orders/{order}/status?min_version={v}",
        w.query
    ))
    .await;
    assert_eq!(cached.status, 200, "{}", cached.body);
    assert_eq!(cached.body["status"], "paid");
    // The cache may still be catching up when the summary answers first.
    orderflow_testkit::eventually("the cache to answer", Duration::from_secs(30), || async {
        let r = get(&format!("{}/orders/{order}/status", w.query)).await;
        (r.body["source"] == "cache").then_some(())
    })
    .await;

    // The summary must have it too before the cache entry goes.
    assert_eq!(
        get(&format!("{}/orders/{order}?min_version={v}", w.query))
            .await
            .status,
        200
    );
    let client = redis::Client::open(orderflow_testkit::redis_url()).expect("redis");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let _: () = conn
        .del(format!("{}order:{order}", w.redis_prefix))
        .await
        .expect("del");
    let fallback = get(&format!("{}/orders/{order}/status", w.query)).await;
    assert_eq!(fallback.status, 200, "{}", fallback.body);
    assert_eq!(fallback.body["source"], "summary");
    assert_eq!(fallback.body["status"], "paid");
    assert_eq!(fallback.header("orderflow-source"), Some("summary"));

    get(&format!(
        "{}/orders/{}/status",
        w.query,
        uuid::Uuid::now_v7()
    ))
    .await
    .assert_problem(404, "not-found");
}

#[tokio::test]
async fn the_stream_delivers_changes_made_through_the_command_api() {
    let shop = shop().await;
    let w = world();
    let (order, v1) = shop.order().await;
    // Wait until the order is visible, then open the stream.
    assert_eq!(
        get(&format!(
            "{}/orders/{order}/status?min_version={v1}",
            w.query
        ))
        .await
        .status,
        200
    );
    let response = reqwest::Client::new()
        .get(format!("{}/orders/{order}/status/stream", w.query))
        .bearer_auth(crate::world::staff())
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let mut read_until = async |needle: &str, text: &mut String| {
        tokio::time::timeout(Duration::from_secs(30), async {
            while !text.contains(needle) {
                let chunk = body.next().await.expect("stream open").expect("chunk");
                text.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {needle:?} in the stream: {text}"));
    };
    read_until("\"status\":\"placed\"", &mut text).await;
    read_until(": heartbeat", &mut text).await;

    shop.command(&order, "pay", json!({})).await;
    read_until("\"status\":\"paid\"", &mut text).await;
    shop.command(
        &order,
        "ship",
        json!({"carrier": "DPD", "tracking_number": "S1"}),
    )
    .await;
    shop.command(&order, "deliver", json!({})).await;
    read_until("\"status\":\"delivered\"", &mut text).await;
    assert!(text.contains("event: status"));
    // After a final state the server ends the stream.
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match body.next().await {
                None => return,
                Some(Ok(_)) => {}
                Some(Err(_)) => return,
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the stream stays open after delivery");
}
