//! The command side: the HTTP API that changes orders.
//!
//! It owns the write database. Every accepted command commits its state
//! change, its events (into the outbox) and its idempotency record in one
//! transaction, so what other services learn from Kafka is exactly what was
//! committed here.

pub mod access;
pub mod app;
pub mod catalog;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod openapi;
pub mod orders;

use std::net::SocketAddr;
use std::time::Duration;

use orderflow_service::auth::{Auth, AuthArgs};
use orderflow_service::config::parse_duration;
use orderflow_service::stores::postgres::{self, WriteDbArgs};
use orderflow_service::{CommonArgs, Readiness, Service, ops, shutdown};
use tokio_util::sync::CancellationToken;

/// Service name in logs, traces and metrics.
pub const NAME: &str = "order-command";

/// The write database's schema; applied at start-up or by `orderctl setup`.
pub use orderflow_writemodel::MIGRATOR;

/// Settings of the command service.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = NAME, version, about)]
pub struct Settings {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Address of the command API (also /healthz, /readyz, /metrics unless
    /// `OPS_ADDR` gives them their own).
    #[arg(long, env = "COMMAND_HTTP_ADDR", default_value = "127.0.0.1:8081")]
    pub http_addr: SocketAddr,
    #[command(flatten)]
    pub ops: ops::OpsAddr,
    /// Apply pending write-database migrations at start-up (turn off when a
    /// migration job owns the schema).
    #[arg(long, env = "MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,
    /// How long an Idempotency-Key is remembered.
    #[arg(long, env = "IDEMPOTENCY_TTL", default_value = "24h", value_parser = parse_duration)]
    pub idempotency_ttl: Duration,
    #[command(flatten)]
    pub write_db: WriteDbArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
}

/// Runs the command service until `token` is cancelled.
pub async fn run(settings: Settings, token: CancellationToken) -> anyhow::Result<()> {
    // Before anything else: no verification key, no service.
    let auth = Auth::from_args(&settings.auth)?;
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
    let state = app::AppState {
        pool: pool.clone(),
        idempotency_ttl: settings.idempotency_ttl,
    };
    let listener = shutdown::bind(settings.http_addr).await?;
    tracing::info!(service = NAME, addr = %listener.local_addr()?, "service.start listening");
    let mut service = Service::new(NAME, token.clone(), settings.common.shutdown_grace);
    settings
        .ops
        .serve(
            &mut service,
            listener,
            app::api(state, &auth),
            ops::router(NAME, readiness),
        )
        .await?;
    let pruner = tokio::spawn(prune_idempotency_keys(pool, token.clone()));
    let keys = tokio::spawn(auth.maintain(token.clone()));
    let served = service.run().await;
    pruner.abort();
    keys.abort();
    served
}

/// Deletes expired idempotency keys every minute, in small batches so the
/// table never sees a long lock.
async fn prune_idempotency_keys(pool: sqlx::PgPool, token: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        loop {
            match idempotency::prune_expired(&pool, 1000).await {
                Ok(1000) => continue,
                Ok(_) => break,
                Err(err) => {
                    tracing::warn!(error = %err, "order_command.idempotency prune failed");
                    break;
                }
            }
        }
    }
}

orderflow_service::settings_test!(Settings);
