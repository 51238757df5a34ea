use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use orderflow_contracts::{CurrentEvent, EventMeta};
use orderflow_domain::OrderId;
use orderflow_testkit::{
    TestDatabase, eventually, fresh_topics, fresh_write_database, kafka_config, unique_name,
};
use rdkafka::Message as _;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use uuid::Uuid;

/// A database with the write schema (the outbox).
pub async fn outbox_db() -> TestDatabase {
    fresh_write_database("relay").await
}

/// An events topic of the test's own, made by the topology code (as
/// `orderctl setup` makes it): the relay only checks that it exists.
pub async fn events_topic() -> String {
    fresh_topics("relay", 6).await.events
}

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Appends version `version` of `order` as a real envelope, in its own transaction.
pub async fn append(db: &TestDatabase, order: Uuid, version: i64) {
    let mut tx = db.pool.begin().await.expect("begin");
    append_in(&mut tx, order, version).await;
    tx.commit().await.expect("commit");
}

/// Appends version `version` of `order` with an envelope of at least
/// `bytes` bytes (a cancellation with a long, random, so incompressible,
/// reason).
pub async fn append_large(db: &TestDatabase, order: Uuid, version: i64, bytes: usize) {
    let meta = EventMeta {
        correlation_id: Uuid::now_v7(),
        causation_id: Uuid::now_v7(),
        occurred_at: time::OffsetDateTime::now_utc(),
    };
    let event = CurrentEvent::Cancelled(orderflow_contracts::v1::OrderCancelled {
        order_id: order,
        reason: (0..bytes / 32 + 1)
            .map(|_| Uuid::new_v4().simple().to_string())
            .collect(),
        refund_minor: None,
        cancelled_at: meta.occurred_at,
    });
    let envelope = event.into_envelope(OrderId(order), version, meta);
    let mut tx = db.pool.begin().await.expect("begin");
    orderflow_outbox::append(&mut tx, &[envelope], None)
        .await
        .expect("append");
    tx.commit().await.expect("commit");
}

pub async fn append_in(conn: &mut sqlx::PgConnection, order: Uuid, version: i64) {
    let meta = EventMeta {
        correlation_id: Uuid::now_v7(),
        causation_id: Uuid::now_v7(),
        occurred_at: time::OffsetDateTime::now_utc(),
    };
    let event = CurrentEvent::Delivered(orderflow_contracts::v1::OrderDelivered {
        order_id: order,
        delivered_at: meta.occurred_at,
    });
    let envelope = event.into_envelope(OrderId(order), version, meta);
    orderflow_outbox::append(
        conn,
        &[envelope],
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    )
    .await
    .expect("append");
}

/// Writes `versions` events for each of `orders` orders: orders interleaved,
/// each order's versions in sequence, `writers` transactions in flight.
pub async fn write_events(db: &TestDatabase, orders: &[Uuid], versions: i64, writers: usize) {
    let chunks: Vec<Vec<Uuid>> = orders
        .chunks(orders.len().div_ceil(writers))
        .map(<[Uuid]>::to_vec)
        .collect();
    let tasks: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let db = db.clone();
            tokio::spawn(async move {
                for version in 1..=versions {
                    for order in &chunk {
                        append(&db, *order, version).await;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer");
    }
}

/// Waits until no outbox row is unpublished (published rows leave `outbox`).
pub async fn drained(db: &TestDatabase, timeout: Duration) {
    eventually("the outbox to drain", timeout, || async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&db.pool)
            .await
            .ok()?;
        (left == 0).then_some(())
    })
    .await;
}

/// What a consumer saw on the topic.
#[derive(Debug, Default)]
pub struct Seen {
    pub messages: usize,
    pub duplicates: usize,
    /// Highest version applied per order.
    pub applied: HashMap<Uuid, i64>,
}

/// Reads the topic from the start until every order reached `versions`,
/// checking per-order order as a projector would: a version equal to the
/// last applied + 1 advances, a version at or below it is a duplicate, and
/// one beyond it is an inversion (the test fails).
pub async fn consume_all(topic: &str, orders: &[Uuid], versions: i64, timeout: Duration) -> Seen {
    consume_all_from(
        &orderflow_testkit::kafka_brokers(),
        topic,
        orders,
        versions,
        timeout,
    )
    .await
}

/// [`consume_all`] against a given broker.
pub async fn consume_all_from(
    brokers: &str,
    topic: &str,
    orders: &[Uuid],
    versions: i64,
    timeout: Duration,
) -> Seen {
    let consumer: StreamConsumer = kafka_config()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique_name("relay-check"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut seen = Seen::default();
    let deadline = tokio::time::Instant::now() + timeout;
    let done = |seen: &Seen| {
        orders
            .iter()
            .all(|o| seen.applied.get(o) == Some(&versions))
    };
    while !done(&seen) {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| {
                let missing = orders
                    .iter()
                    .filter(|o| seen.applied.get(o) != Some(&versions))
                    .count();
                panic!(
                    "{missing} orders incomplete after {timeout:?}; saw {} messages",
                    seen.messages
                )
            })
            .expect("consume");
        let envelope: serde_json::Value =
            serde_json::from_slice(message.payload().expect("payload")).expect("envelope json");
        let order = Uuid::parse_str(envelope["aggregate_id"].as_str().expect("aggregate_id"))
            .expect("uuid");
        let key = std::str::from_utf8(message.key().expect("key")).expect("utf8");
        assert_eq!(key, order.to_string(), "key = order id");
        let version = envelope["aggregate_version"].as_i64().expect("version");
        seen.messages += 1;
        let applied = seen.applied.entry(order).or_insert(0);
        if version <= *applied {
            seen.duplicates += 1;
        } else {
            assert_eq!(
                version,
                *applied + 1,
                "order {order}: version {version} arrived after {applied}"
            );
            *applied = version;
        }
    }
    seen
}

/// A relay running as a real process.
pub struct RelayProcess {
    pub child: Child,
    pub ops_port: u16,
}

impl RelayProcess {
    pub fn start(db: &TestDatabase, topic: &str, brokers: &str) -> Self {
        Self::start_with(db, topic, brokers, &[])
    }

    /// [`RelayProcess::start`] with extra environment.
    pub fn start_with(
        db: &TestDatabase,
        topic: &str,
        brokers: &str,
        extra: &[(&str, &str)],
    ) -> Self {
        let ops_port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
            .env("WRITE_DATABASE_URL", &db.url)
            .env("KAFKA_BROKERS", brokers)
            .env("EVENTS_TOPIC", topic)
            .envs(extra.iter().copied())
            .env("OPS_ADDR", format!("127.0.0.1:{ops_port}"))
            .env("RELAY_STANDBY_POLL", "200ms")
            .env("RELAY_BATCH_SIZE", "200")
            .env("SHUTDOWN_GRACE", "5s")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the outbox-relay binary");
        Self { child, ops_port }
    }

    /// Sends `signal` (e.g. `STOP`, `CONT`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether this process currently leads shard 0 (from its /metrics).
    pub async fn is_leader(&self) -> bool {
        let url = format!("http://127.0.0.1:{}/metrics", self.ops_port);
        match reqwest::get(url).await {
            Ok(r) => r
                .text()
                .await
                .unwrap_or_default()
                .lines()
                .any(|l| l.starts_with("relay_leader{shard=\"0\"} 1")),
            Err(_) => false,
        }
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
