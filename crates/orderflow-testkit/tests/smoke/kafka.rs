use std::collections::HashMap;
use std::time::Duration;

use futures::future::join_all;
use orderflow_testkit::{fresh_topic, kafka_config, unique_name};
use rdkafka::Message as _;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

const MESSAGES: usize = 1_000;
const KEYS: usize = 50;

#[tokio::test]
async fn idempotent_producer_and_consumer_group_keep_per_key_order() {
    let topic = fresh_topic("smoke-kafka", 6).await;

    let producer: FutureProducer = kafka_config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    // All sends in flight at once; the idempotent producer keeps per-partition order.
    let deliveries = (0..MESSAGES).map(|i| {
        let key = format!("order-{}", i % KEYS);
        let payload = format!("{}", i / KEYS);
        let producer = producer.clone();
        let topic = topic.clone();
        async move {
            producer
                .send(
                    FutureRecord::to(&topic).key(&key).payload(&payload),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(e, _)| e)
        }
    });
    for result in join_all(deliveries).await {
        result.expect("every message is acknowledged");
    }

    let consumer: StreamConsumer = kafka_config()
        .set("group.id", unique_name("smoke-group"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");

    let mut last_seq: HashMap<String, i64> = HashMap::new();
    let mut received = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while received < MESSAGES {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {received} of {MESSAGES} messages arrived in time"))
            .expect("consume");
        let key = String::from_utf8(message.key().expect("key").to_vec()).expect("utf8 key");
        let seq: i64 = std::str::from_utf8(message.payload().expect("payload"))
            .expect("utf8")
            .parse()
            .expect("number");
        let previous = last_seq.insert(key.clone(), seq).unwrap_or(-1);
        assert_eq!(seq, previous + 1, "key {key}: got {seq} after {previous}");
        received += 1;
    }
    assert_eq!(last_seq.len(), KEYS);
    assert!(
        last_seq
            .values()
            .all(|&s| s == (MESSAGES / KEYS) as i64 - 1)
    );
}
