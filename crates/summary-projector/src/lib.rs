//! Projects order events into `order_summary`: one denormalised row per order.
//!
//! The summary is what the order screens and lists read. Inbox rows, summary
//! updates and (optionally) offsets commit in one read-database transaction
//! per batch, so a crash can never apply a batch halfway.

use std::net::SocketAddr;

use orderflow_projector::ProjectorArgs;

use orderflow_service::{CommonArgs, ops, shutdown};
use tokio_util::sync::CancellationToken;

/// Service name in logs, traces and metrics; also the consumer group id.
pub const NAME: &str = "summary-projector";

/// Settings of the projector.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = NAME, version, about)]
pub struct Settings {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "OPS_ADDR", default_value = "127.0.0.1:9182")]
    pub ops_addr: SocketAddr,
    #[command(flatten)]
    pub projector: ProjectorArgs,
}

/// Runs the projector until `token` is cancelled.
pub async fn run(settings: Settings, token: CancellationToken) -> anyhow::Result<()> {
    let readiness = settings.projector.readiness(NAME)?;
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
