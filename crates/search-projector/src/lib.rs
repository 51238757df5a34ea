//! The projector service: settings, readiness and the consumer, around the
//! store adapter in `orderflow-readstore`. Projects order events into the `orders` search index.
//!
//! Documents carry the order version as their external version, so the
//! search engine itself rejects a stale write, even from a second instance
//! during a rebalance; the inbox in the read database is written only after
//! a `_bulk` request succeeded.

use std::net::SocketAddr;

use orderflow_projector::{ProjectorArgs, service};
use orderflow_service::stores::search::{self, SearchArgs};
use orderflow_service::{CommonArgs, Readiness};
use tokio_util::sync::CancellationToken;

pub use orderflow_readstore::search::{NAME, SearchProjection};

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
    let args = &settings.projector;
    let pool = service::read_pool(NAME, args).await?;
    let client = settings.search.client()?;
    let alias = settings.search.alias.clone();
    let projection = SearchProjection {
        client: client.clone(),
        alias: alias.clone(),
    };
    let checks = {
        let client = client.clone();
        |r: Readiness| r.check("search", move || search::probe(client.clone()))
    };
    // The index can be created only once the search engine answers.
    let prepare = {
        let token = token.clone();
        async move {
            let mut waits = orderflow_service::retry::schedule(std::time::Duration::from_secs(5));
            while let Err(err) = orderflow_readstore::search::index::ensure(&client, &alias).await {
                tracing::warn!(error = %err, "search_projector.index not ready; retrying");
                let wait = waits.next().unwrap_or(std::time::Duration::from_secs(5));
                tokio::select! {
                    () = token.cancelled() => return Ok(()),
                    () = tokio::time::sleep(wait) => {}
                }
            }
            Ok(())
        }
    };
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
