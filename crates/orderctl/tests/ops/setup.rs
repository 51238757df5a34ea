//! `orderctl setup`, the binary every deployment runs first: both schemas and
//! both topics, idempotent, and a wrong topic refused by name.

use std::process::Output;
use std::time::Duration;

use orderflow_testkit::{fresh_database, kafka_brokers, kafka_config, unique_name};
use rdkafka::consumer::{BaseConsumer, Consumer as _};

async fn setup(write: &str, read: &str, topic: &str, extra: &[(&str, &str)]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_orderctl"));
    command
        .arg("setup")
        .env("WRITE_DATABASE_URL", write)
        .env("READ_DATABASE_URL", read)
        .env("KAFKA_BROKERS", kafka_brokers())
        .env("EVENTS_TOPIC", topic)
        .env_remove("DLQ_TOPIC")
        .env("RUST_LOG", "warn");
    for (name, value) in extra {
        command.env(name, value);
    }
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("task")
        .expect("running orderctl setup")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Partition count per topic as the broker reports it.
fn partitions(topic: &str) -> Option<usize> {
    let consumer: BaseConsumer = kafka_config().create().expect("metadata client");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len())
}

#[tokio::test]
async fn setup_creates_both_schemas_and_both_topics_and_repeats_as_a_no_op() {
    let write = fresh_database("setup_write").await;
    let read = fresh_database("setup_read").await;
    let topic = unique_name("setup").replace('_', "-");

    let first = setup(&write.url, &read.url, &topic, &[]).await;
    assert!(first.status.success(), "{}", text(&first));
    let out = text(&first);
    assert!(
        out.contains(&format!("topic {topic}: created (6 partitions")),
        "{out}"
    );
    assert!(
        out.contains(&format!("topic {topic}.dlq: created (1 partitions")),
        "{out}"
    );
    assert_eq!(partitions(&topic), Some(6));
    assert_eq!(partitions(&format!("{topic}.dlq")), Some(1));
    for (pool, table) in [
        (&write.pool, "outbox"),
        (&write.pool, "orders"),
        (&read.pool, "inbox"),
        (&read.pool, "order_summary"),
    ] {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(table)
            .fetch_one(pool)
            .await
            .expect("query");
        assert!(exists, "{table} was not created");
    }

    let again = setup(&write.url, &read.url, &topic, &[]).await;
    assert!(again.status.success(), "{}", text(&again));
    let out = text(&again);
    assert!(
        out.contains("write database: 0 migration(s) applied"),
        "{out}"
    );
    assert!(
        out.contains("read database: 0 migration(s) applied"),
        "{out}"
    );
    assert!(
        out.contains(&format!("topic {topic}: exists (6 partitions)")),
        "{out}"
    );
    assert!(
        out.contains(&format!("topic {topic}.dlq: exists (1 partitions)")),
        "{out}"
    );
}

#[tokio::test]
async fn setup_refuses_an_events_topic_with_fewer_partitions_naming_it() {
    let write = fresh_database("setup_small_write").await;
    let read = fresh_database("setup_small_read").await;
    let topic = unique_name("setup-small").replace('_', "-");
    let made = setup(
        &write.url,
        &read.url,
        &topic,
        &[("EVENTS_TOPIC_PARTITIONS", "2")],
    )
    .await;
    assert!(made.status.success(), "{}", text(&made));

    let refused = setup(
        &write.url,
        &read.url,
        &topic,
        &[("EVENTS_TOPIC_PARTITIONS", "6")],
    )
    .await;
    assert!(!refused.status.success(), "must refuse: {}", text(&refused));
    let out = text(&refused);
    assert!(
        out.contains(&format!(
            "topic {topic} has 2 partitions but 6 are configured"
        )),
        "{out}"
    );
    assert_eq!(partitions(&topic), Some(2), "the topic is left as it was");
}

#[tokio::test]
async fn setup_refuses_one_database_for_both_models() {
    let db = fresh_database("setup_same").await;
    let topic = unique_name("setup-same").replace('_', "-");
    let refused = setup(&db.url, &db.url, &topic, &[]).await;
    assert!(!refused.status.success(), "must refuse: {}", text(&refused));
    let out = text(&refused);
    assert!(out.contains("point at the same database"), "{out}");
    let tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            .fetch_one(&db.pool)
            .await
            .expect("query");
    assert_eq!(tables, 0, "nothing was written");
}
