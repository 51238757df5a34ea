//! Projects order events into `order_summary`: one denormalised row per order.
//!
//! The summary is what the order screens and lists read. Inbox rows and
//! summary updates commit in one read-database transaction per batch, so a
//! crash can never apply a batch halfway or mark it processed without its
//! effects.

pub mod projection;

use std::net::SocketAddr;

use orderflow_projector::{MIGRATOR, ProjectorArgs, Runtime};
use orderflow_service::{CommonArgs, Service, ops, shutdown};
use tokio_util::sync::CancellationToken;

pub use projection::SummaryProjection;

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
    /// Apply pending read-database migrations at start-up.
    #[arg(long, env = "MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,
    #[command(flatten)]
    pub projector: ProjectorArgs,
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
    let runtime = Runtime::new(
        SummaryProjection { pool: pool.clone() },
        pool.clone(),
        &settings.projector.kafka,
        settings.projector.runtime.clone(),
    )?;
    let health = runtime.health();
    let readiness = settings
        .projector
        .readiness(NAME, &pool)?
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
