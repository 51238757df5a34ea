//! The projector service: settings, readiness and the consumer, around the
//! store adapter in `orderflow-readstore`. Projects order events into the Redis status cache and its change channel.
//!
//! Each order has `{status, version, updated_at}` written by a compare-and-set
//! on version (a Lua script, so check and write are one atomic step), and
//! every change is published on a pub/sub channel that the query API streams
//! to clients. Redis keeps no persistence here: after losing its data the
//! cache is refilled from the write model by `orderctl backfill --only
//! status`, and until then the query API falls back to the summary.

use std::net::SocketAddr;

use orderflow_projector::{ProjectorArgs, service};
use orderflow_service::stores::redis::{self as redis_store, RedisArgs};
use orderflow_service::{CommonArgs, Readiness};
use tokio_util::sync::CancellationToken;

pub use orderflow_readstore::status::{NAME, StatusProjection};

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
    let args = &settings.projector;
    let pool = service::read_pool(NAME, args).await?;
    let client = settings.redis.client()?;
    let projection = StatusProjection::new(client.clone(), settings.redis.key_prefix.clone());
    let checks = |r: Readiness| r.check("redis", move || redis_store::probe(client.clone()));
    let prepare = async { Ok(()) };
    service::serve(
        projection,
        pool,
        &settings.common,
        settings.ops_addr,
        args,
        checks,
        prepare,
        token,
    )
    .await
}

orderflow_service::settings_test!(Settings);
