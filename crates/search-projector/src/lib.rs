//! Projects order events into the `orders` search index.
//!
//! Documents carry the order version as their external version, so the search
//! engine itself rejects a stale write; the inbox in the read database is
//! written only after a `_bulk` request succeeded.

use std::net::SocketAddr;

use orderflow_projector::ProjectorArgs;
use orderflow_service::stores::search::{self, SearchArgs};
use orderflow_service::{CommonArgs, ops, shutdown};
use tokio_util::sync::CancellationToken;

/// Service name in logs, traces and metrics; also the consumer group id.
pub const NAME: &str = "search-projector";

/// Settings of the projector.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = NAME, version, about)]
pub struct Settings {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "OPS_ADDR", default_value = "127.0.0.1:9183")]
    pub ops_addr: SocketAddr,
    #[command(flatten)]
    pub projector: ProjectorArgs,
    #[command(flatten)]
    pub search: SearchArgs,
}

/// Runs the projector until `token` is cancelled.
pub async fn run(settings: Settings, token: CancellationToken) -> anyhow::Result<()> {
    let readiness = settings.projector.readiness(NAME)?.check("search", {
        let client = settings.search.client()?;
        move || search::probe(client.clone())
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
