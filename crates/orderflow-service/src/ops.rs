//! `/healthz`, `/readyz` and `/metrics`, the same on every service.
//!
//! `/healthz` answers as long as the process serves HTTP (a liveness probe
//! that restarts a wedged process, nothing more). `/readyz` runs the service's
//! own dependency checks concurrently, each with a short deadline, so a
//! readiness probe never hangs on a dead dependency and reports which one is
//! down.
//!
//! The HTTP APIs can serve them on an address of their own ([`OpsAddr`]),
//! so the port customers reach answers only the API and the probes and the
//! scraper reach a port the network policy keeps inside the cluster.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::{BoxFuture, join_all};
use serde_json::json;

use crate::shutdown::{Service, bind};
use crate::telemetry::metrics_handle;

/// How long one dependency check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

type CheckFn = dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync;

/// The named dependency checks behind `/readyz`.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Arc<CheckFn>)>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.checks.iter().map(|(n, _)| *n).collect();
        f.debug_struct("Readiness").field("checks", &names).finish()
    }
}

impl Readiness {
    /// No checks: always ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check; `Err` carries a short reason shown in `/readyz`.
    pub fn check<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks.push((
            name,
            Arc::new(move || Box::pin(check()) as BoxFuture<'static, _>),
        ));
        self
    }

    /// Runs every check concurrently; the map says `ok` or why not.
    pub async fn evaluate(&self) -> (bool, BTreeMap<&'static str, String>) {
        let results = join_all(self.checks.iter().map(|(name, check)| {
            let fut = check();
            async move {
                let outcome = match tokio::time::timeout(CHECK_TIMEOUT, fut).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(reason)) => Err(reason),
                    Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
                };
                (*name, outcome)
            }
        }))
        .await;
        let ready = results.iter().all(|(_, r)| r.is_ok());
        let report = results
            .into_iter()
            .map(|(name, r)| (name, r.err().unwrap_or_else(|| "ok".to_owned())))
            .collect();
        (ready, report)
    }
}

/// Where an HTTP API serves its ops endpoints.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OpsAddr {
    /// Address of /healthz, /readyz and /metrics apart from the API, which
    /// then answers only API routes (compose and Kubernetes set it). Unset:
    /// they are served on the API's address too.
    #[arg(id = "api_ops_addr", long = "ops-addr", env = "OPS_ADDR")]
    pub addr: Option<SocketAddr>,
}

impl OpsAddr {
    /// Adds `api` on `listener` to `service`, and `ops` on its own address
    /// when one is set (else merged into the API's router).
    pub async fn serve(
        &self,
        service: &mut Service,
        listener: tokio::net::TcpListener,
        api: Router,
        ops: Router,
    ) -> anyhow::Result<()> {
        match self.addr {
            Some(addr) => {
                let ops_listener = bind(addr).await?;
                tracing::info!(addr = %ops_listener.local_addr()?, "service.start ops listening");
                service.serve("http", listener, api);
                service.serve("ops", ops_listener, ops);
            }
            None => service.serve("http", listener, api.merge(ops)),
        }
        Ok(())
    }
}

/// The ops router: `/healthz`, `/readyz`, `/metrics`.
pub fn router(service: &'static str, readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(move || healthz(service)))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Arc::new(readiness))
}

async fn healthz(service: &'static str) -> Response {
    axum::Json(json!({ "status": "ok", "service": service })).into_response()
}

async fn readyz(State(readiness): State<Arc<Readiness>>) -> Response {
    let (ready, checks) = readiness.evaluate().await;
    if !ready {
        tracing::warn!(?checks, "service.ops.readyz not ready");
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "status": if ready { "ready" } else { "not ready" }, "checks": checks });
    (status, axum::Json(body)).into_response()
}

async fn metrics() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics_handle().render(),
    )
        .into_response()
}

/// Middleware: `http_requests_total` and `http_request_duration_seconds` by
/// method, route template (never the raw path: ids would explode the label
/// set) and status.
pub async fn record_http_metrics(request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}
