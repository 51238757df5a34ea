//! The projector service: settings, readiness and the consumer, around the
//! store adapter in `orderflow-readstore`. Projects order events into `order_summary`: one denormalised row per order.
//!
//! The summary is what the order screens and lists read. Inbox rows and
//! summary updates commit in one read-database transaction per batch, so a
//! crash can never apply a batch halfway or mark it processed without its
//! effects.

use std::net::SocketAddr;

use orderflow_projector::{ProjectorArgs, service};
use orderflow_service::CommonArgs;
use tokio_util::sync::CancellationToken;

pub use orderflow_readstore::summary::{NAME, SummaryProjection};

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
    let args = &settings.projector;
    let pool = service::read_pool(NAME, args).await?;
    let projection = SummaryProjection { pool: pool.clone() };
    let prepare = async { Ok(()) };
    service::serve(
        projection,
        pool,
        &settings.common,
        settings.ops_addr,
        args,
        |r| r,
        prepare,
        token,
    )
    .await
}

orderflow_service::settings_test!(Settings);
