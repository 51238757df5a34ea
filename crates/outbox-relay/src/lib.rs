//! The outbox relay: moves committed events from the write database to Kafka.
//!
//! Publishing is at least once (a batch is marked published only after every
//! delivery report is positive) and in per-order order (one active relay per
//! shard, rows read in id order). Consumers deduplicate; the relay never
//! drops.

use std::net::SocketAddr;

use orderflow_service::stores::kafka::{self, KafkaArgs};
use orderflow_service::stores::postgres::{self, WriteDbArgs};
use orderflow_service::{CommonArgs, Readiness, ops, shutdown};
use tokio_util::sync::CancellationToken;

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
}

/// Runs the relay until `token` is cancelled.
pub async fn run(settings: Settings, token: CancellationToken) -> anyhow::Result<()> {
    let pool = postgres::pool(
        &settings.write_db.url,
        settings.write_db.max_connections,
        NAME,
    )?;
    let kafka_probe = kafka::prober(&settings.kafka, NAME)?;
    let readiness = Readiness::new()
        .check("postgres", move || postgres::probe(pool.clone()))
        .check("kafka", move || {
            let probe = kafka_probe.clone();
            async move { probe.probe().await }
        });
    let router = ops::router(NAME, readiness);
    shutdown::serve_until_stopped(
        NAME,
        settings.ops_addr,
        router,
        settings.common.shutdown_grace,
        token,
    )
    .await
}

orderflow_service::settings_test!(Settings);
