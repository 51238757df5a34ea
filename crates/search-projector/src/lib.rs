//! Projects order events into the `orders` search index.
//!
//! Documents carry the order version as their external version, so the
//! search engine itself rejects a stale write, even from a second instance
//! during a rebalance; the inbox in the read database is written only after
//! a `_bulk` request succeeded.

pub mod index;
pub mod projection;

use std::net::SocketAddr;

use orderflow_projector::{MIGRATOR, ProjectorArgs, Runtime};
use orderflow_service::stores::search::{self, SearchArgs};
use orderflow_service::{CommonArgs, Service, ops, shutdown};
use tokio_util::sync::CancellationToken;

pub use projection::SearchProjection;

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
    /// Apply pending read-database migrations (inbox) at start-up.
    #[arg(long, env = "MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,
    #[command(flatten)]
    pub projector: ProjectorArgs,
    #[command(flatten)]
    pub search: SearchArgs,
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
    let client = settings.search.client()?;
    let runtime = Runtime::new(
        SearchProjection {
            client: client.clone(),
            alias: settings.search.alias.clone(),
        },
        pool.clone(),
        &settings.projector.kafka,
        settings.projector.runtime.clone(),
    )?;
    let health = runtime.health();
    let readiness = settings
        .projector
        .readiness(NAME, &pool)?
        .check("search", {
            let client = client.clone();
            move || search::probe(client.clone())
        })
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
    let alias = settings.search.alias.clone();
    service.spawn("consumer", async move {
        // The index may be created only once the search engine answers.
        let mut wait = std::time::Duration::from_millis(200);
        while let Err(err) = index::ensure(&client, &alias).await {
            tracing::warn!(error = %err, "search_projector.index not ready; retrying");
            tokio::select! {
                () = token.cancelled() => return Ok(()),
                () = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(std::time::Duration::from_secs(5));
        }
        runtime.run(token).await
    });
    service.run().await
}

orderflow_service::settings_test!(Settings);
