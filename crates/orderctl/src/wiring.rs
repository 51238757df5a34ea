//! How the commands reach the stores from their settings: pools, migrated
//! where a command needs the schema, the read-model targets of a fill or a
//! check, and the Ctrl-C token long jobs stop on.
//!
//! Every store a command needs is reached once before the work starts, so
//! an operator who mistyped a URL hears which dependency is unreachable and
//! which setting points at it ([`Unreachable`], exit status 4), instead of
//! a connection error from the middle of a job.

use std::time::Duration;

use anyhow::Context as _;
use orderflow_ops::backfill::Targets;
use orderflow_service::stores::kafka::KafkaArgs;
use orderflow_service::stores::postgres::{self, ReadDbArgs, WriteDbArgs};
use orderflow_service::stores::redis::RedisArgs;
use orderflow_service::stores::search::SearchArgs;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, PgPool};
use tokio_util::sync::CancellationToken;

use crate::cli::{FillArgs, ReadModel};

/// How long reaching one dependency may take before it counts as unreachable.
const REACH_TIMEOUT: Duration = Duration::from_secs(10);

/// A dependency a command could not reach.
#[derive(Debug)]
pub struct Unreachable {
    /// What it is, e.g. "the write database (Postgres)".
    pub dependency: &'static str,
    /// The setting that points at it, e.g. "WRITE_DATABASE_URL (--write-database-url)".
    pub setting: &'static str,
    /// What the client said.
    pub cause: String,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot reach {}; check {}: {}",
            self.dependency, self.setting, self.cause
        )
    }
}

impl std::error::Error for Unreachable {}

const WRITE_DB: (&str, &str) = (
    "the write database (Postgres)",
    "WRITE_DATABASE_URL (--write-database-url)",
);
const READ_DB: (&str, &str) = (
    "the read database (Postgres)",
    "READ_DATABASE_URL (--read-database-url)",
);
const REDIS: (&str, &str) = ("Redis (the status cache)", "REDIS_URL (--redis-url)");
const SEARCH: (&str, &str) = (
    "the search engine (OpenSearch/Elasticsearch)",
    "SEARCH_URL (--search-url)",
);
const KAFKA: (&str, &str) = ("Kafka", "KAFKA_BROKERS (--kafka-brokers)");

fn unreachable((dependency, setting): (&'static str, &'static str), cause: String) -> Unreachable {
    Unreachable {
        dependency,
        setting,
        cause,
    }
}

/// A token cancelled by Ctrl-C: a backfill stops between batches, with the
/// place to resume.
pub fn interrupt_token() -> CancellationToken {
    let token = CancellationToken::new();
    tokio::spawn({
        let token = token.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::warn!("orderctl interrupted; stopping after this batch");
                token.cancel();
            }
        }
    });
    token
}

async fn reached_pool(
    url: &orderflow_service::Secret,
    max: u32,
    which: (&'static str, &'static str),
) -> anyhow::Result<PgPool> {
    let pool = postgres::pool(url, max, "orderctl")
        .map_err(|e| unreachable(which, format!("the URL does not parse: {e}")))?;
    // One direct connection first: a pool would only say it timed out.
    let options: PgConnectOptions = url
        .expose()
        .parse()
        .map_err(|e| unreachable(which, format!("the URL does not parse: {e}")))?;
    match tokio::time::timeout(REACH_TIMEOUT, options.connect()).await {
        Ok(Ok(conn)) => {
            drop(conn);
            Ok(pool)
        }
        Ok(Err(e)) => Err(unreachable(which, e.to_string()).into()),
        Err(_) => Err(unreachable(which, format!("no answer within {REACH_TIMEOUT:?}")).into()),
    }
}

/// A pool on the write database, reached once.
pub async fn write_pool(write_db: &WriteDbArgs, max: u32) -> anyhow::Result<PgPool> {
    reached_pool(&write_db.url, max, WRITE_DB).await
}

/// A pool on the read database, reached once.
pub async fn read_pool(read_db: &ReadDbArgs, max: u32) -> anyhow::Result<PgPool> {
    reached_pool(&read_db.url, max, READ_DB).await
}

/// A write pool with the write database's migrations applied.
pub async fn migrated_write_pool(write_db: &WriteDbArgs) -> anyhow::Result<PgPool> {
    let pool = write_pool(write_db, write_db.max_connections.max(4)).await?;
    orderflow_topology::migrate_write(&pool)
        .await
        .context("applying write-database migrations")?;
    Ok(pool)
}

/// A read pool with the read database's migrations applied.
pub async fn migrated_read_pool(read_db: &ReadDbArgs) -> anyhow::Result<PgPool> {
    let pool = read_pool(read_db, 4).await?;
    orderflow_topology::migrate_read(&pool)
        .await
        .context("applying read-database migrations")?;
    Ok(pool)
}

/// A Redis client that answered PING.
pub async fn redis_client(redis: &RedisArgs) -> anyhow::Result<redis::Client> {
    let client = redis
        .client()
        .map_err(|e| unreachable(REDIS, format!("the URL does not parse: {e}")))?;
    let probe = orderflow_service::stores::redis::probe(client.clone());
    match tokio::time::timeout(REACH_TIMEOUT, probe).await {
        Ok(Ok(())) => Ok(client),
        Ok(Err(e)) => Err(unreachable(REDIS, e).into()),
        Err(_) => Err(unreachable(REDIS, format!("no answer within {REACH_TIMEOUT:?}")).into()),
    }
}

/// A search client whose node answered.
pub async fn search_client(search: &SearchArgs) -> anyhow::Result<elasticsearch::Elasticsearch> {
    let client = search
        .client()
        .map_err(|e| unreachable(SEARCH, format!("the URL does not parse: {e}")))?;
    let ping = client.ping().send();
    match tokio::time::timeout(REACH_TIMEOUT, ping).await {
        Ok(Ok(r)) if r.status_code().is_success() => Ok(client),
        Ok(Ok(r)) => Err(unreachable(SEARCH, format!("answered {}", r.status_code())).into()),
        Ok(Err(e)) => Err(unreachable(SEARCH, e.to_string()).into()),
        Err(_) => Err(unreachable(SEARCH, format!("no answer within {REACH_TIMEOUT:?}")).into()),
    }
}

/// A Kafka client config whose cluster answered a metadata request.
pub async fn kafka_config(kafka: &KafkaArgs) -> anyhow::Result<rdkafka::ClientConfig> {
    let config = kafka.client_config("orderctl");
    orderflow_service::stores::kafka::topic_partitions(&config, &kafka.events_topic, REACH_TIMEOUT)
        .await
        .map_err(|e| unreachable(KAFKA, e))?;
    Ok(config)
}

/// The read models `fill` names, reached, and migrated or created where
/// needed.
pub async fn targets(fill: &FillArgs) -> anyhow::Result<Targets> {
    let mut targets = Targets::default();
    if fill.only.contains(&ReadModel::Summary) {
        targets.summary = Some(migrated_read_pool(&fill.read_db).await?);
    }
    if fill.only.contains(&ReadModel::Search) {
        let client = search_client(&fill.search).await?;
        orderflow_readstore::search::index::ensure(&client, &fill.search.alias).await?;
        targets.search = Some(orderflow_readstore::search::SearchProjection {
            client,
            alias: fill.search.alias.clone(),
        });
    }
    if fill.only.contains(&ReadModel::Status) {
        targets.status = Some(orderflow_readstore::status::StatusProjection::new(
            redis_client(&fill.redis).await?,
            fill.redis.key_prefix.clone(),
        ));
    }
    Ok(targets)
}
