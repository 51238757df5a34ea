//! Projects order events into the Redis status cache and its change channel.
//!
//! Each order has `{status, version, updated_at}` written by a compare-and-set
//! on version, and every change is published on a pub/sub channel that the
//! query API streams to clients.

use std::net::SocketAddr;

use orderflow_projector::ProjectorArgs;
use orderflow_service::stores::redis::{self as redis_store, RedisArgs};
use orderflow_service::{CommonArgs, ops, shutdown};
use tokio_util::sync::CancellationToken;

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
    #[command(flatten)]
    pub projector: ProjectorArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
}

/// Runs the projector until `token` is cancelled.
pub async fn run(settings: Settings, token: CancellationToken) -> anyhow::Result<()> {
    let readiness = settings.projector.readiness(NAME)?.check("redis", {
        let client = settings.redis.client()?;
        move || redis_store::probe(client.clone())
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
