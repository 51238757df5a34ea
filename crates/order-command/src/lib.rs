//! The command side: the HTTP API that changes orders.
//!
//! It owns the write database. Every accepted command commits its state
//! change, its events (into the outbox) and its idempotency record in one
//! transaction, so what other services learn from Kafka is exactly what was
//! committed here.

use std::net::SocketAddr;

use orderflow_service::stores::postgres::{self, WriteDbArgs};
use orderflow_service::{CommonArgs, Readiness, ops, shutdown};
use tokio_util::sync::CancellationToken;

/// Service name in logs, traces and metrics.
pub const NAME: &str = "order-command";

/// The write database's schema; applied at start-up or by `orderctl migrate`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Settings of the command service.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = NAME, version, about)]
pub struct Settings {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Address of the command API (also serves /healthz, /readyz, /metrics).
    #[arg(long, env = "COMMAND_HTTP_ADDR", default_value = "127.0.0.1:8081")]
    pub http_addr: SocketAddr,
    /// Apply pending write-database migrations at start-up (turn off when a
    /// migration job owns the schema).
    #[arg(long, env = "MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,
    #[command(flatten)]
    pub write_db: WriteDbArgs,
}

/// Runs the command service until `token` is cancelled.
pub async fn run(settings: Settings, token: CancellationToken) -> anyhow::Result<()> {
    let pool = postgres::pool(
        &settings.write_db.url,
        settings.write_db.max_connections,
        NAME,
    )?;
    if settings.migrate_on_start {
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| anyhow::anyhow!("applying write-database migrations: {e}"))?;
    }
    let readiness = Readiness::new().check("postgres", {
        let pool = pool.clone();
        move || postgres::probe(pool.clone())
    });
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
