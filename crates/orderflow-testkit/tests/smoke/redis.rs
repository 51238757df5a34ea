use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt as _;
use orderflow_testkit::{redis_client, redis_connection};
use redis::AsyncCommands as _;

#[tokio::test]
async fn hash_round_trip_and_pub_sub() {
    let (mut conn, prefix) = redis_connection("smoke_redis").await;

    let key = format!("{prefix}order:1");
    let _: () = conn
        .hset_multiple(&key, &[("status", "paid"), ("version", "2")])
        .await
        .expect("hset");
    let stored: HashMap<String, String> = conn.hgetall(&key).await.expect("hgetall");
    assert_eq!(stored.get("status").map(String::as_str), Some("paid"));
    assert_eq!(stored.get("version").map(String::as_str), Some("2"));
    let _: () = conn.del(&key).await.expect("del");

    let channel = format!("{prefix}changes");
    let mut pubsub = redis_client()
        .get_async_pubsub()
        .await
        .expect("pubsub connection");
    pubsub.subscribe(&channel).await.expect("subscribe");
    let receivers: i64 = conn
        .publish(&channel, "order 1 is paid")
        .await
        .expect("publish");
    assert_eq!(receivers, 1, "our subscriber is the one receiver");
    let message = tokio::time::timeout(Duration::from_secs(10), pubsub.on_message().next())
        .await
        .expect("message within 10 s")
        .expect("stream open");
    assert_eq!(message.get_channel_name(), channel);
    assert_eq!(
        message.get_payload::<String>().expect("payload"),
        "order 1 is paid"
    );
}
