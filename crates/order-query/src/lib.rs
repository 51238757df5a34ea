//! The query side: HTTP reads over the read models.
//!
//! Summaries and lists come from the read database, full-text search from
//! the search index, status from Redis (falling back to the summary). A
//! read may name the version a command returned (`min_version`) and then
//! waits, by notification and up to a bound, for the read model to show it;
//! `consistency=strong` reads the write database through a connection whose
//! every transaction is read-only. Responses say which store answered, the
//! version they reflect, and how far that store's projector lags. It also
//! exports the last drift checks as metrics ([`drift`]), so an alert can
//! fire on drift.

pub mod app;
pub mod drift;
pub mod error;
pub mod lag;
pub mod level0;
pub mod notify;
pub mod openapi;
pub mod params;
pub mod search;
pub mod status;
pub mod summary;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use orderflow_service::auth::{Auth, AuthArgs, Slots};
use orderflow_service::config::parse_duration;
use orderflow_service::stores::kafka::KafkaArgs;
use orderflow_service::stores::postgres::{self, ReadDbArgs, WriteDbArgs};
use orderflow_service::stores::redis::{self as redis_store, RedisArgs};
use orderflow_service::stores::search::{self as search_store, SearchArgs};
use orderflow_service::{CommonArgs, Readiness, Service, ops, shutdown};
use sqlx::postgres::PgConnectOptions;
use tokio_util::sync::CancellationToken;

use crate::app::{AppState, Groups};

/// Service name in logs, traces and metrics.
pub const NAME: &str = "order-query";

/// Settings of the query service.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = NAME, version, about)]
pub struct Settings {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Address of the query API (also /healthz, /readyz, /metrics unless
    /// `OPS_ADDR` gives them their own).
    #[arg(long, env = "QUERY_HTTP_ADDR", default_value = "127.0.0.1:8082")]
    pub http_addr: SocketAddr,
    #[command(flatten)]
    pub ops: ops::OpsAddr,
    #[command(flatten)]
    pub read_db: ReadDbArgs,
    /// Write database, used read-only by `consistency=strong`.
    #[command(flatten)]
    pub write_db: WriteDbArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(flatten)]
    pub search: SearchArgs,
    /// Kafka, only to measure the projectors' lag for the staleness headers.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Longest wait of a `min_version` read before it answers 503.
    #[arg(long, env = "CONSISTENCY_WAIT", default_value = "2s", value_parser = parse_duration)]
    pub consistency_wait: Duration,
    /// Heartbeat interval of status streams.
    #[arg(long, env = "SSE_HEARTBEAT", default_value = "15s", value_parser = parse_duration)]
    pub heartbeat: Duration,
    /// Consumer groups of the summary, search and status projectors.
    #[arg(long, env = "SUMMARY_GROUP", default_value = "summary-projector")]
    pub summary_group: String,
    #[arg(long, env = "SEARCH_GROUP", default_value = "search-projector")]
    pub search_group: String,
    #[arg(long, env = "STATUS_GROUP", default_value = "status-projector")]
    pub status_group: String,
    /// Serve the level-0 comparison endpoints (joins on the write database).
    #[arg(long, env = "LEVEL0_ENDPOINTS", default_value_t = false, action = clap::ArgAction::Set)]
    pub level0: bool,
    /// Concurrent `min_version` waits one token subject may hold (then 429).
    #[arg(long, env = "MAX_WAITS_PER_SUBJECT", default_value_t = 8)]
    pub max_waits_per_subject: usize,
    /// How often the drift metrics are read from the reconcile run records.
    #[arg(long, env = "DRIFT_METRICS_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub drift_metrics_interval: Duration,
    /// Concurrent status streams one token subject may hold (then 429).
    #[arg(long, env = "MAX_STREAMS_PER_SUBJECT", default_value_t = 4)]
    pub max_streams_per_subject: usize,
    #[command(flatten)]
    pub auth: AuthArgs,
}

/// Runs the query service until `token` is cancelled.
pub async fn run(settings: Settings, token: CancellationToken) -> anyhow::Result<()> {
    // Before anything else: no verification key, no service.
    let auth = Auth::from_args(&settings.auth)?;
    let read = postgres::pool(
        &settings.read_db.url,
        settings.read_db.max_connections,
        NAME,
    )?;
    // Every transaction on this pool is read-only, whatever its SQL says.
    let write_options: PgConnectOptions = settings
        .write_db
        .url
        .expose()
        .parse::<PgConnectOptions>()
        .context("WRITE_DATABASE_URL")?
        .application_name(NAME)
        .options([("default_transaction_read_only", "on")]);
    let write = postgres::pool_with(write_options, settings.write_db.max_connections);
    let redis_client = settings.redis.client()?;
    let search_client = settings.search.client()?;
    let state = AppState {
        read: read.clone(),
        write: write.clone(),
        redis: Arc::default(),
        redis_client: redis_client.clone(),
        redis_prefix: settings.redis.key_prefix.clone(),
        search: search_client.clone(),
        alias: settings.search.alias.clone(),
        notifier: notify::Notifier::default(),
        lag: lag::Lag::default(),
        groups: Groups {
            summary: settings.summary_group.clone(),
            search: settings.search_group.clone(),
            status: settings.status_group.clone(),
        },
        consistency_wait: settings.consistency_wait,
        heartbeat: settings.heartbeat,
        level0: settings.level0,
        waits: Slots::new(
            settings.max_waits_per_subject,
            "this token already holds its limit of concurrent min_version waits",
        ),
        streams: Slots::new(
            settings.max_streams_per_subject,
            "this token already holds its limit of open status streams",
        ),
    };
    let readiness = Readiness::new()
        .check("read-db", move || postgres::probe(read.clone()))
        .check("write-db", move || postgres::probe(write.clone()))
        .check("redis", {
            let client = redis_client.clone();
            move || redis_store::probe(client.clone())
        })
        .check("search", move || search_store::probe(search_client.clone()));

    let listener = shutdown::bind(settings.http_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "order_query.start listening");
    let mut service = Service::new(NAME, token.clone(), settings.common.shutdown_grace);
    service.spawn(
        "summary-notifications",
        notify::listen_summary(
            state.read.clone(),
            state.notifier.summary.clone(),
            token.clone(),
        ),
    );
    service.spawn(
        "status-notifications",
        notify::listen_status(
            redis_client,
            format!("{}status-changes", settings.redis.key_prefix),
            state.notifier.status.clone(),
            token.clone(),
        ),
    );
    service.spawn(
        "lag",
        lag::track(
            settings.kafka.client_config(NAME),
            settings.kafka.events_topic.clone(),
            vec![
                state.groups.summary.clone(),
                state.groups.search.clone(),
                state.groups.status.clone(),
            ],
            state.lag.clone(),
            token.clone(),
        ),
    );
    service.spawn(
        "drift-metrics",
        drift::export(
            state.read.clone(),
            settings.drift_metrics_interval,
            token.clone(),
        ),
    );
    service.spawn("auth-keys", auth.clone().maintain(token.clone()));
    settings
        .ops
        .serve(
            &mut service,
            listener,
            app::api(state, &auth),
            ops::router(NAME, readiness),
        )
        .await?;
    service.run().await
}

orderflow_service::settings_test!(Settings);
