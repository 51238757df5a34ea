//! Projects order events into the Redis status cache and its change channel.
//!
//! Each order has `{status, version, updated_at}` written by a compare-and-set
//! on version (a Lua script, so check and write are one atomic step), and
//! every change is published on a pub/sub channel that the query API streams
//! to clients. Redis keeps no persistence here: after losing its data the
//! cache is rebuilt by replay, and the query API falls back to the summary.

pub mod projection;

use std::net::SocketAddr;

use orderflow_projector::{MIGRATOR, ProjectorArgs, Runtime};
use orderflow_service::stores::redis::{self as redis_store, RedisArgs};
use orderflow_service::{CommonArgs, Service, ops, shutdown};
use tokio_util::sync::CancellationToken;

pub use projection::StatusProjection;

/// Service name in logs, traces and metrics; also the consumer group id.
pub const NAME: &str = "status-projector";

/// Settings of the projector.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = NAME, version, about)]
pub struct Settings {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "OPS_ADDR", default_value = "127.0.0.1:9184")]
    pub ops_addr: SocketAddr,
    /// Apply pending read-database migrations (inbox) at start-up.
    #[arg(long, env = "MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,
    #[command(flatten)]
    pub projector: ProjectorArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
}

/// Runs the projector until `token` is cancelled.
pub async fn run(settings: Settings, token: CancellationToken) -> anyhow::Result<()> {
    let pool = settings.projector.pool(NAME)?;
    if settings.migrate_on_start {
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| anyhow::anyhow!("applying read-database migrations: {e}"))?;
    }
    let client = settings.redis.client()?;
    let runtime = Runtime::new(
        StatusProjection::new(client.clone(), settings.redis.key_prefix.clone()),
        pool.clone(),
        &settings.projector.kafka,
        settings.projector.runtime.clone(),
    )?;
    let health = runtime.health();
    let readiness = settings
        .projector
        .readiness(NAME, &pool)?
        .check("redis", move || redis_store::probe(client.clone()))
        .check("projector", move || {
            let health = health.clone();
            async move { health.check() }
        });
    let mut service = Service::new(NAME, token.clone(), settings.common.shutdown_grace);
    service.serve(
        "ops",
        shutdown::bind(settings.ops_addr).await?,
        ops::router(NAME, readiness),
    );
    service.spawn("consumer", runtime.run(token));
    service.run().await
}

orderflow_service::settings_test!(Settings);
