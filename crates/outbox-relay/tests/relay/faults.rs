//! Faults with real processes: every loop is bounded in count and time.

#![allow(clippy::print_stdout)] // figures are the output

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use orderflow_testkit::{eventually, kafka_brokers};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use uuid::Uuid;

use crate::helpers::{
    RelayProcess, consume_all, consume_all_from, drained, events_topic, free_port, outbox_db,
    write_events,
};

#[tokio::test]
async fn kill_9_at_random_points_loses_nothing() {
    const ORDERS: usize = 100;
    const VERSIONS: i64 = 50; // 5,000 events
    let db = outbox_db().await;
    let topic = events_topic().await;
    let orders: Vec<Uuid> = (0..ORDERS).map(|_| Uuid::now_v7()).collect();
    let mut relay = RelayProcess::start(&db, &topic, &kafka_brokers());

    let writer = {
        let (db, orders) = (db.clone(), orders.clone());
        tokio::spawn(async move { write_events(&db, &orders, VERSIONS, 4).await })
    };
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mut kills = 0;
    // Kill while events flow: at most 8 kills, each 100–900 ms apart.
    while !writer.is_finished() && kills < 8 {
        tokio::time::sleep(Duration::from_millis(100 + rng.random_range(0..800u64))).await;
        relay.kill();
        kills += 1;
        relay = RelayProcess::start(&db, &topic, &kafka_brokers());
    }
    writer.await.expect("writer");
    drained(&db, Duration::from_secs(120)).await;

    let seen = consume_all(&topic, &orders, VERSIONS, Duration::from_secs(120)).await;
    println!(
        "kill -9 x{kills}: {} events, {} messages read, {} duplicates",
        ORDERS as i64 * VERSIONS,
        seen.messages,
        seen.duplicates
    );
    assert!(
        kills >= 3,
        "the writer finished before the relay was killed enough ({kills})"
    );
}

#[tokio::test]
async fn two_relays_never_invert_and_the_standby_takes_over() {
    const ORDERS: usize = 100;
    const VERSIONS: i64 = 100; // 10,000 events
    let db = outbox_db().await;
    let topic = events_topic().await;
    let orders: Vec<Uuid> = (0..ORDERS).map(|_| Uuid::now_v7()).collect();
    let a = RelayProcess::start(&db, &topic, &kafka_brokers());
    let b = RelayProcess::start(&db, &topic, &kafka_brokers());
    let mut relays = [Some(a), Some(b)];

    let writer = {
        let (db, orders) = (db.clone(), orders.clone());
        tokio::spawn(async move { write_events(&db, &orders, VERSIONS, 4).await })
    };
    // Once some events are out, kill whichever relay leads.
    eventually("some events published", Duration::from_secs(60), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_published")
            .fetch_one(&db.pool)
            .await
            .ok()?;
        (n >= 1000).then_some(())
    })
    .await;
    let mut leader = None;
    for (i, relay) in relays.iter().enumerate() {
        if relay.as_ref().expect("running").is_leader().await {
            leader = Some(i);
        }
    }
    let leader = leader.expect("one relay leads");
    relays[leader].take().expect("leader").kill();
    let standby = relays[1 - leader].as_ref().expect("standby");
    eventually(
        "the standby to take over",
        Duration::from_secs(30),
        || async { standby.is_leader().await.then_some(()) },
    )
    .await;

    writer.await.expect("writer");
    drained(&db, Duration::from_secs(120)).await;
    let seen = consume_all(&topic, &orders, VERSIONS, Duration::from_secs(120)).await;
    println!(
        "two relays, leader killed: {} messages, {} duplicates",
        seen.messages, seen.duplicates
    );
}

/// A Kafka broker of this test's own (its own port and data), so restarting
/// it cannot disturb the tests that share the main one.
struct PrivateBroker {
    dir: PathBuf,
    port: u16,
    controller: u16,
}

impl PrivateBroker {
    fn script() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/stack")
    }

    fn stack(&self, action: &str) {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let jars = std::env::var("ORDERFLOW_JARS_DIR")
            .unwrap_or_else(|_| repo.join(".stack/jars").display().to_string());
        let status = Command::new("bash")
            .arg(Self::script())
            .args([action, "kafka"])
            .env("ORDERFLOW_STACK_DIR", &self.dir)
            .env("ORDERFLOW_JARS_DIR", jars)
            .env("KAFKA_PORT", self.port.to_string())
            .env("KAFKA_CONTROLLER_PORT", self.controller.to_string())
            .status()
            .expect("running scripts/stack");
        assert!(
            status.success(),
            "scripts/stack {action} kafka failed for the private broker"
        );
    }

    fn start() -> Self {
        let dir =
            std::env::temp_dir().join(format!("orderflow-broker-{}", Uuid::new_v4().simple()));
        let broker = Self {
            dir,
            port: free_port(),
            controller: free_port(),
        };
        broker.stack("up");
        broker
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.stack("down");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn broker_restart_mid_stream_loses_nothing() {
    const ORDERS: usize = 50;
    const VERSIONS: i64 = 40; // 2,000 events
    let broker = tokio::task::spawn_blocking(PrivateBroker::start)
        .await
        .expect("broker");
    let db = outbox_db().await;
    let topic = orderflow_testkit::fresh_topics_on(&broker.brokers(), "relay", 6)
        .await
        .events;
    let orders: Vec<Uuid> = (0..ORDERS).map(|_| Uuid::now_v7()).collect();
    let _relay = RelayProcess::start(&db, &topic, &broker.brokers());

    let writer = {
        let (db, orders) = (db.clone(), orders.clone());
        tokio::spawn(async move { write_events(&db, &orders, VERSIONS, 2).await })
    };
    eventually("some events published", Duration::from_secs(60), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_published")
            .fetch_one(&db.pool)
            .await
            .ok()?;
        (n >= 200).then_some(())
    })
    .await;
    let broker = tokio::task::spawn_blocking(move || {
        broker.stack("down");
        broker.stack("up");
        broker
    })
    .await
    .expect("restart");
    writer.await.expect("writer");
    drained(&db, Duration::from_secs(120)).await;

    // Read back from the restarted broker itself.
    let seen = consume_all_from(
        &broker.brokers(),
        &topic,
        &orders,
        VERSIONS,
        Duration::from_secs(120),
    )
    .await;
    println!(
        "broker restart: {} messages, {} duplicates",
        seen.messages, seen.duplicates
    );
    drop(broker);
}

/// A leader frozen in place (SIGSTOP: its sockets stay open, so the lock
/// would never die with the connection) loses the lock to the standby
/// within `RELAY_LEADER_TIMEOUT`, and nothing is lost or inverted.
#[tokio::test]
async fn a_frozen_leader_loses_its_lock_to_the_standby() {
    const ORDERS: usize = 20;
    const VERSIONS: i64 = 10;
    let db = outbox_db().await;
    let topic = events_topic().await;
    let settings = [("RELAY_LEADER_TIMEOUT", "3s")];
    let a = RelayProcess::start_with(&db, &topic, &kafka_brokers(), &settings);
    eventually(
        "the first relay to lead",
        Duration::from_secs(60),
        || async { a.is_leader().await.then_some(()) },
    )
    .await;
    let b = RelayProcess::start_with(&db, &topic, &kafka_brokers(), &settings);
    a.signal("STOP");
    let orders: Vec<Uuid> = (0..ORDERS).map(|_| Uuid::now_v7()).collect();
    write_events(&db, &orders, VERSIONS, 2).await;
    eventually(
        "the standby to take over from the frozen leader",
        Duration::from_secs(60),
        || async { b.is_leader().await.then_some(()) },
    )
    .await;
    drained(&db, Duration::from_secs(60)).await;
    a.signal("CONT");
    let seen = consume_all(&topic, &orders, VERSIONS, Duration::from_secs(60)).await;
    assert_eq!(seen.applied.len(), ORDERS);
}

/// A leader whose Kafka is gone gives the lock up after
/// `RELAY_KAFKA_GIVE_UP`, and a standby that reaches Kafka publishes.
/// (The two relays are pointed at different brokers to make "this replica
/// cannot reach Kafka" happen to one of them only.)
#[tokio::test]
async fn a_leader_that_cannot_reach_kafka_gives_the_lock_to_a_standby() {
    const ORDERS: usize = 20;
    const VERSIONS: i64 = 5;
    let broker = tokio::task::spawn_blocking(PrivateBroker::start)
        .await
        .expect("broker");
    let db = outbox_db().await;
    let topic = orderflow_testkit::fresh_topics_on(&broker.brokers(), "relay-giveup", 6)
        .await
        .events;
    let settings = orderflow_topology::TopicSettings::default();
    orderflow_topology::topics::ensure_all(
        &orderflow_testkit::kafka_config(),
        &settings.specs(&topic, &format!("{topic}.dlq")),
    )
    .await
    .expect("the same topic on the shared broker");
    let waits = [
        ("RELAY_KAFKA_GIVE_UP", "3s"),
        ("RELAY_LEADER_TIMEOUT", "3s"),
    ];
    let a = RelayProcess::start_with(&db, &topic, &broker.brokers(), &waits);
    eventually(
        "the first relay to lead",
        Duration::from_secs(60),
        || async { a.is_leader().await.then_some(()) },
    )
    .await;
    let b = RelayProcess::start_with(&db, &topic, &kafka_brokers(), &waits);
    let broker = tokio::task::spawn_blocking(move || {
        broker.stack("down");
        broker
    })
    .await
    .expect("stop the private broker");
    let orders: Vec<Uuid> = (0..ORDERS).map(|_| Uuid::now_v7()).collect();
    write_events(&db, &orders, VERSIONS, 2).await;
    eventually(
        "the standby to take over",
        Duration::from_secs(90),
        || async { b.is_leader().await.then_some(()) },
    )
    .await;
    drained(&db, Duration::from_secs(90)).await;
    let seen = consume_all(&topic, &orders, VERSIONS, Duration::from_secs(60)).await;
    assert_eq!(seen.applied.len(), ORDERS);
    drop(a);
    drop(broker);
}
