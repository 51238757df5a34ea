//! The query side: HTTP reads over the read models.
//!
//! Summaries come from the read database, search from the search index,
//! status from Redis. The write database is reachable read-only for the
//! `consistency=strong` fallback, which is why it is among the dependencies.

use std::net::SocketAddr;

use orderflow_service::stores::postgres::{self, ReadDbArgs, WriteDbArgs};
use orderflow_service::stores::redis::{self as redis_store, RedisArgs};
use orderflow_service::stores::search::{self, SearchArgs};
use orderflow_service::{CommonArgs, Readiness, ops, shutdown};
use tokio_util::sync::CancellationToken;

/// Service name in logs, traces and metrics.
pub const NAME: &str = "order-query";

/// Settings of the query service.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = NAME, version, about)]
pub struct Settings {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Address of the query API (also serves /healthz, /readyz, /metrics).
    #[arg(long, env = "QUERY_HTTP_ADDR", default_value = "127.0.0.1:8082")]
    pub http_addr: SocketAddr,
    #[command(flatten)]
    pub read_db: ReadDbArgs,
    /// Write database, used read-only by `consistency=strong`.
    #[command(flatten)]
    pub write_db: WriteDbArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(flatten)]
    pub search: SearchArgs,
}

/// Runs the query service until `token` is cancelled.
pub async fn run(settings: Settings, token: CancellationToken) -> anyhow::Result<()> {
    let read_pool = postgres::pool(
        &settings.read_db.url,
        settings.read_db.max_connections,
        NAME,
    )?;
    let write_pool = postgres::pool(
        &settings.write_db.url,
        settings.write_db.max_connections,
        NAME,
    )?;
    let redis_client = settings.redis.client()?;
    let search_client = settings.search.client()?;
    let readiness = Readiness::new()
        .check("read-db", move || postgres::probe(read_pool.clone()))
        .check("write-db", move || postgres::probe(write_pool.clone()))
        .check("redis", move || redis_store::probe(redis_client.clone()))
        .check("search", move || search::probe(search_client.clone()));
    let router = ops::router(NAME, readiness);
    shutdown::serve_until_stopped(
        NAME,
        settings.http_addr,
        router,
        settings.common.shutdown_grace,
        token,
    )
    .await
}

orderflow_service::settings_test!(Settings);
