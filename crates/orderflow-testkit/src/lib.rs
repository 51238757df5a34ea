//! Test kit: isolated resources on the real local stack.
//!
//! Every integration test gets its own database, topic, index and Redis key
//! prefix, named with a random suffix, so tests run in parallel and never see
//! each other's data. When an engine is not reachable the helpers panic with a
//! message naming the engine and how to start it: a test never passes or
//! skips because a service is missing.
//!
//! Engine locations come from the same environment variables the services
//! read, with the same loopback defaults (`scripts/stack up` starts them).
//!
//! Fixtures isolate data, never shape: schemas and topics are made by
//! `orderflow-topology`, the code `orderctl setup` runs for `scripts/run`,
//! compose and Kubernetes, so a test sees the topology a user deploys
//! (dead-letter topic included) under a name of its own.

pub mod bench;

use std::future::Future;
use std::time::Duration;

use elasticsearch::Elasticsearch;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection as _, PgPool};

const HOW_TO_START: &str =
    "start the local stack with `scripts/stack up` (or run the whole suite with `scripts/test`)";

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// Panics with a message that names the engine, what failed and how to start it.
#[track_caller]
pub fn engine_down(engine: &str, location: &str, error: impl std::fmt::Display) -> ! {
    panic!("{engine} is not reachable at {location}: {error}\n  -> {HOW_TO_START}")
}

/// A short random name with a readable prefix: `t_<prefix>_<12 hex>`.
pub fn unique_name(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("t_{prefix}_{}", &id[..12])
}

/// Polls `check` until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------- Postgres

/// URL of a database the test role may connect to in order to create others.
pub fn postgres_admin_url() -> String {
    env_or(
        "TEST_POSTGRES_URL",
        "postgres://orderflow@127.0.0.1:5432/postgres",
    )
}

/// A database created for one test.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    /// The database name (`t_<prefix>_<hex>`).
    pub name: String,
    /// A URL pointing at it, for services started by the test.
    pub url: String,
    /// A pool connected to it.
    pub pool: PgPool,
}

/// Creates an empty database for one test.
///
/// Databases are left behind when the test ends (dropping needs an async
/// context and no connections); `scripts/test` drops old `t_%` databases
/// before each run.
pub async fn fresh_database(prefix: &str) -> TestDatabase {
    let admin_url = postgres_admin_url();
    let options: PgConnectOptions = admin_url
        .parse()
        .unwrap_or_else(|e| panic!("TEST_POSTGRES_URL is not a Postgres URL: {e}"));
    let mut admin = sqlx::PgConnection::connect_with(&options)
        .await
        .unwrap_or_else(|e| engine_down("Postgres", &redact(&admin_url), e));
    let name = unique_name(prefix);
    sqlx::query(&format!(r#"CREATE DATABASE "{name}""#))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
    let _ = admin.close().await;
    let db_options = options.clone().database(&name);
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(db_options)
        .await
        .unwrap_or_else(|e| engine_down("Postgres", &redact(&admin_url), e));
    let url = replace_database(&admin_url, &name);
    TestDatabase { name, url, pool }
}

fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let base = base.rsplit_once('/').map_or(base, |(head, _)| head);
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

// ------------------------------------------------------------------- Kafka

/// Kafka bootstrap servers.
pub fn kafka_brokers() -> String {
    env_or("KAFKA_BROKERS", "127.0.0.1:9092")
}

/// A client config pointing at the test broker.
pub fn kafka_config() -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", kafka_brokers());
    config
}

/// A write database of the test's own, migrated by the topology code.
pub async fn fresh_write_database(prefix: &str) -> TestDatabase {
    let db = fresh_database(prefix).await;
    orderflow_topology::migrate_write(&db.pool)
        .await
        .unwrap_or_else(|e| panic!("write-database migrations on {}: {e}", db.name));
    db
}

/// A read database of the test's own, migrated by the topology code.
pub async fn fresh_read_database(prefix: &str) -> TestDatabase {
    let db = fresh_database(prefix).await;
    orderflow_topology::migrate_read(&db.pool)
        .await
        .unwrap_or_else(|e| panic!("read-database migrations on {}: {e}", db.name));
    db
}

/// The topics of one test: the events topic and its dead-letter topic, with
/// the derived names the services use by default.
#[derive(Debug, Clone)]
pub struct TestTopics {
    /// `t-<prefix>-<hex>`; pass it as `EVENTS_TOPIC`.
    pub events: String,
    /// `<events>.dlq`: what a projector uses when `DLQ_TOPIC` is not set.
    pub dlq: String,
}

/// Creates the events and dead-letter topics of one test through the same
/// topology code as `orderctl setup`, with `partitions` for the events topic.
pub async fn fresh_topics(prefix: &str, partitions: i32) -> TestTopics {
    fresh_topics_on(&kafka_brokers(), prefix, partitions).await
}

/// [`fresh_topics`] on another broker (a test's private one).
pub async fn fresh_topics_on(brokers: &str, prefix: &str, partitions: i32) -> TestTopics {
    let events = unique_name(prefix).replace('_', "-");
    let dlq = orderflow_service::stores::kafka::default_dlq_topic(&events);
    let settings = orderflow_topology::TopicSettings {
        partitions,
        ..orderflow_topology::TopicSettings::default()
    };
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    tokio::time::timeout(
        Duration::from_secs(120),
        orderflow_topology::topics::ensure_all(&config, &settings.specs(&events, &dlq)),
    )
    .await
    .unwrap_or_else(|_| engine_down("Kafka", brokers, "creating the topics timed out"))
    .unwrap_or_else(|e| engine_down("Kafka", brokers, e));
    TestTopics { events, dlq }
}

/// Creates a plain topic of its own for one test and returns its name: for
/// tests of Kafka itself, not of the system's topology.
pub async fn fresh_topic(prefix: &str, partitions: i32) -> String {
    let name = unique_name(prefix).replace('_', "-");
    let admin: AdminClient<DefaultClientContext> = kafka_config()
        .create()
        .unwrap_or_else(|e| engine_down("Kafka", &kafka_brokers(), e));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(1));
    let results = tokio::time::timeout(
        Duration::from_secs(60),
        admin.create_topics([&topic], &options),
    )
    .await
    .unwrap_or_else(|_| engine_down("Kafka", &kafka_brokers(), "creating a topic timed out"))
    .unwrap_or_else(|e| engine_down("Kafka", &kafka_brokers(), e));
    for result in results {
        if let Err((topic, code)) = result {
            panic!("creating Kafka topic {topic}: {code}");
        }
    }
    name
}

// ------------------------------------------------------------------- Redis

/// Redis URL.
pub fn redis_url() -> String {
    env_or("REDIS_URL", "redis://127.0.0.1:6379")
}

/// A multiplexed Redis connection and a key prefix of this test's own.
pub async fn redis_connection(prefix: &str) -> (redis::aio::MultiplexedConnection, String) {
    let url = redis_url();
    let client =
        redis::Client::open(url.as_str()).unwrap_or_else(|e| panic!("REDIS_URL is invalid: {e}"));
    let conn = tokio::time::timeout(
        Duration::from_secs(10),
        client.get_multiplexed_async_connection(),
    )
    .await
    .unwrap_or_else(|_| engine_down("Redis", &url, "connecting timed out"))
    .unwrap_or_else(|e| engine_down("Redis", &url, e));
    (conn, format!("{}:", unique_name(prefix)))
}

/// A Redis client, for tests that need pub/sub connections of their own.
pub fn redis_client() -> redis::Client {
    redis::Client::open(redis_url().as_str())
        .unwrap_or_else(|e| panic!("REDIS_URL is invalid: {e}"))
}

// ------------------------------------------------------------------ Search

/// Search engine base URL.
pub fn search_url() -> String {
    env_or("SEARCH_URL", "http://127.0.0.1:9200")
}

/// A client for the search engine; panics naming it when it does not answer.
pub async fn search_client() -> Elasticsearch {
    let url = search_url();
    let parsed = url
        .parse()
        .unwrap_or_else(|e| panic!("SEARCH_URL is invalid: {e}"));
    let transport = TransportBuilder::new(SingleNodeConnectionPool::new(parsed))
        .disable_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_else(|e| panic!("building the search client: {e}"));
    let client = Elasticsearch::new(transport);
    client
        .ping()
        .send()
        .await
        .and_then(|r| r.error_for_status_code())
        .unwrap_or_else(|e| engine_down("OpenSearch", &url, e));
    client
}

/// A unique, lowercase index name for one test.
pub fn fresh_index_name(prefix: &str) -> String {
    unique_name(prefix)
}
