//! The outbox relay: moves committed events from the write database to Kafka.
//!
//! Publishing is at least once (a batch is marked published only after every
//! delivery report is positive) and in per-order order (one active relay per
//! shard, rows read in id order, the producer idempotent and never timing a
//! message out). Consumers deduplicate; the relay never drops. Marking a
//! row published moves it: one statement deletes the acknowledged rows from
//! `outbox` and records each, with its Kafka partition and offset, in the
//! narrow `outbox_published` (see `orderflow_outbox`), committed without
//! waiting for the WAL flush (a mark lost in a crash only re-sends). It polls
//! every `RELAY_POLL_INTERVAL` (10 ms) rather than being woken by a
//! `NOTIFY` per command, which would make the commands commit one at a time;
//! an operator's re-drive still wakes it on `NOTIFY outbox`.

pub mod leader;
pub mod pipeline;
pub mod publisher;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use orderflow_outbox::Shard;
use orderflow_service::config::parse_duration;
use orderflow_service::stores::kafka::{self, KafkaArgs};
use orderflow_service::stores::postgres::{self, WriteDbArgs};
use orderflow_service::{CommonArgs, Readiness, Service, ops, shutdown};
use rdkafka::producer::FutureProducer;
use sqlx::postgres::PgConnectOptions;
use tokio_util::sync::CancellationToken;

use crate::leader::Relay;

/// Service name in logs, traces and metrics.
pub const NAME: &str = "outbox-relay";

/// Settings of the relay.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = NAME, version, about)]
pub struct Settings {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "OPS_ADDR", default_value = "127.0.0.1:9181")]
    pub ops_addr: SocketAddr,
    #[command(flatten)]
    pub write_db: WriteDbArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Most rows published per batch.
    #[arg(long, env = "RELAY_BATCH_SIZE", default_value_t = 1000)]
    pub batch_size: i64,
    /// Batches in flight at once: read and marked in Postgres while the
    /// earlier ones are on their way to Kafka. 1 is one batch at a time
    /// (read, send, wait for the acks, mark, read again).
    #[arg(long, env = "RELAY_PIPELINE_DEPTH", default_value_t = 2)]
    pub pipeline_depth: usize,
    /// How long an idle relay waits before it reads the outbox again (a
    /// `NOTIFY outbox`, sent by re-drives, wakes it sooner).
    #[arg(long, env = "RELAY_POLL_INTERVAL", default_value = "10ms", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// How long the producer waits for more rows before it sends a
    /// partition's batch to Kafka (librdkafka's `linger.ms`): every row of
    /// a quiet outbox waits this long, and a draining one fills its batches
    /// whatever it is.
    #[arg(long, env = "RELAY_KAFKA_LINGER", default_value = "1ms", value_parser = parse_duration)]
    pub kafka_linger: Duration,
    /// How often a standby tries to take over a shard.
    #[arg(long, env = "RELAY_STANDBY_POLL", default_value = "1s", value_parser = parse_duration)]
    pub standby_poll: Duration,
    /// Number of shards (one active relay each); every replica must agree.
    #[arg(long, env = "RELAY_SHARDS", default_value_t = 1)]
    pub shards: i64,
    /// Longest a frozen or cut-off leader keeps a shard's lock: the lock
    /// connection's `idle_session_timeout` and `tcp_user_timeout`.
    #[arg(long, env = "RELAY_LEADER_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub leader_timeout: Duration,
    /// A leader that gets no acknowledgement from Kafka for this long gives
    /// the lock up, so a standby can try.
    #[arg(long, env = "RELAY_KAFKA_GIVE_UP", default_value = "60s", value_parser = parse_duration)]
    pub kafka_give_up: Duration,
    /// Published rows are deleted after this long.
    #[arg(long, env = "OUTBOX_RETENTION", default_value = "24h", value_parser = parse_duration)]
    pub outbox_retention: Duration,
}

/// Runs the relay until `token` is cancelled.
pub async fn run(settings: Settings, token: CancellationToken) -> anyhow::Result<()> {
    anyhow::ensure!(settings.shards >= 1, "RELAY_SHARDS must be at least 1");
    anyhow::ensure!(
        settings.batch_size >= 1,
        "RELAY_BATCH_SIZE must be at least 1"
    );
    anyhow::ensure!(
        settings.pipeline_depth >= 1,
        "RELAY_PIPELINE_DEPTH must be at least 1"
    );
    anyhow::ensure!(
        settings.leader_timeout > settings.poll_interval * 2,
        "RELAY_LEADER_TIMEOUT must be more than twice RELAY_POLL_INTERVAL: \
         a working leader touches its lock connection once per poll"
    );
    let pool = postgres::pool(
        &settings.write_db.url,
        settings.write_db.max_connections,
        NAME,
    )?;
    let connect: PgConnectOptions = settings
        .write_db
        .url
        .expose()
        .parse::<PgConnectOptions>()
        .context("WRITE_DATABASE_URL")?
        .application_name(NAME);
    // The topic is the topology's (`orderctl setup`), not the relay's: a
    // relay needs no right to create topics, and one started before the
    // setup job says so instead of publishing into an auto-created topic.
    let topic = settings.kafka.events_topic.clone();
    match kafka::topic_partitions(
        &settings.kafka.client_config(NAME),
        &topic,
        Duration::from_secs(30),
    )
    .await
    {
        Ok(Some(_)) => {}
        Ok(None) => anyhow::bail!(
            "the events topic {topic} does not exist: create the topology with `orderctl setup`"
        ),
        Err(err) => anyhow::bail!("checking the events topic {topic}: {err}"),
    }
    let producer: FutureProducer =
        publisher::producer_config(settings.kafka.client_config(NAME), settings.kafka_linger)
            .create()
            .context("creating the Kafka producer")?;

    let kafka_probe = kafka::prober(&settings.kafka, NAME)?;
    let readiness = Readiness::new()
        .check("postgres", {
            let pool = pool.clone();
            move || postgres::probe(pool.clone())
        })
        .check("kafka", {
            let probe = kafka_probe.clone();
            move || {
                let probe = probe.clone();
                async move { probe.probe().await }
            }
        })
        .check("events topic", {
            let topic = topic.clone();
            move || {
                let probe = kafka_probe.clone();
                let topic = topic.clone();
                async move { probe.probe_topic(&topic).await }
            }
        });

    let relay = Arc::new(Relay {
        pool: pool.clone(),
        connect,
        producer,
        topic,
        batch_size: settings.batch_size,
        pipeline_depth: settings.pipeline_depth,
        poll_interval: settings.poll_interval,
        standby_poll: settings.standby_poll,
        leader_timeout: settings.leader_timeout,
        kafka_give_up: settings.kafka_give_up,
        limits: publisher::Limits::new(
            settings
                .kafka
                .client_config(NAME)
                .create()
                .context("creating the Kafka admin client")?,
            settings.kafka.events_topic.clone(),
        ),
    });
    let mut service = Service::new(NAME, token.clone(), settings.common.shutdown_grace);
    service.serve(
        "ops",
        shutdown::bind(settings.ops_addr).await?,
        ops::router(NAME, readiness),
    );
    for index in 0..settings.shards {
        let shard = Shard {
            index,
            count: settings.shards,
        };
        service.spawn(
            &format!("shard-{index}"),
            leader::run_shard(relay.clone(), shard, token.clone()),
        );
    }
    service.spawn(
        "housekeeping",
        leader::housekeeping(pool, settings.outbox_retention, token),
    );
    service.run().await
}

orderflow_service::settings_test!(Settings);
