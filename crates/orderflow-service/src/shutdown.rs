//! Running a service's HTTP listeners and background tasks until SIGTERM.
//!
//! A signal cancels one [`CancellationToken`]. HTTP servers stop accepting and
//! finish in-flight requests; workers see the token, finish and commit the
//! batch in hand, and return. Whatever is still running after the grace
//! period is aborted. A task that fails stops the whole service, so an
//! orchestrator restarts it instead of leaving a half-working process up.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

/// Turns SIGTERM and SIGINT into a cancelled token.
#[derive(Debug)]
pub struct ShutdownSignal;

impl ShutdownSignal {
    /// A token that is cancelled on the first SIGTERM or SIGINT.
    pub fn install() -> CancellationToken {
        let token = CancellationToken::new();
        let trigger = token.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("service.shutdown.signal received; draining");
            trigger.cancel();
        });
        token
    }
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Binds a TCP listener, naming the address in the error.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))
}

/// Serves one router on `addr` until `token` is cancelled: the whole life of a
/// service that has no background work of its own.
pub async fn serve_until_stopped(
    name: &'static str,
    addr: SocketAddr,
    router: Router,
    grace: Duration,
    token: CancellationToken,
) -> anyhow::Result<()> {
    let listener = bind(addr).await?;
    tracing::info!(service = name, addr = %listener.local_addr()?, "service.start listening");
    let mut service = Service::new(name, token, grace);
    service.serve("http", listener, router);
    service.run().await
}

/// A service's HTTP servers and background tasks, stopped together.
#[derive(Debug)]
pub struct Service {
    name: &'static str,
    token: CancellationToken,
    grace: Duration,
    tasks: JoinSet<(String, anyhow::Result<()>)>,
}

impl Service {
    /// A service that stops when `token` is cancelled.
    pub fn new(name: &'static str, token: CancellationToken, grace: Duration) -> Self {
        Self {
            name,
            token,
            grace,
            tasks: JoinSet::new(),
        }
    }

    /// The token every task should watch.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Serves `router` on `listener` until shutdown, letting in-flight
    /// requests finish.
    pub fn serve(&mut self, label: &str, listener: TcpListener, router: Router) {
        let token = self.token.clone();
        let router = router
            .layer(axum::middleware::from_fn(crate::ops::record_http_metrics))
            .layer(TraceLayer::new_for_http().make_span_with(crate::telemetry::http_span));
        self.spawn(label, async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(token.cancelled_owned())
                .await
                .context("http server failed")
        });
    }

    /// Runs a background task; it must return once the token is cancelled.
    pub fn spawn<F>(&mut self, label: &str, task: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let label = label.to_owned();
        self.tasks.spawn(async move { (label, task.await) });
    }

    /// Waits for a signal or for a task to end, then drains everything within
    /// the grace period. Returns the first task error, if any.
    pub async fn run(mut self) -> anyhow::Result<()> {
        let mut first_error = None;
        tokio::select! {
            biased;
            () = self.token.cancelled() => {}
            Some(joined) = self.tasks.join_next() => {
                first_error = task_error(joined);
                if !self.token.is_cancelled() {
                    tracing::warn!(service = self.name, "service.shutdown a task ended early; stopping the service");
                    self.token.cancel();
                }
            }
        }
        let deadline = tokio::time::Instant::now() + self.grace;
        loop {
            match tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
                Ok(Some(joined)) => {
                    if let Some(err) = task_error(joined) {
                        first_error.get_or_insert(err);
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(
                        service = self.name,
                        remaining = self.tasks.len(),
                        "service.shutdown grace period over; aborting tasks"
                    );
                    self.tasks.shutdown().await;
                    break;
                }
            }
        }
        tracing::info!(service = self.name, "service.shutdown complete");
        first_error.map_or(Ok(()), Err)
    }
}

fn task_error(
    joined: Result<(String, anyhow::Result<()>), tokio::task::JoinError>,
) -> Option<anyhow::Error> {
    match joined {
        Ok((_, Ok(()))) => None,
        Ok((label, Err(err))) => {
            tracing::error!(task = %label, error = ?err, "service.task failed");
            Some(err.context(format!("task {label} failed")))
        }
        Err(join_err) => {
            tracing::error!(error = %join_err, "service.task panicked");
            Some(anyhow::anyhow!("task panicked: {join_err}"))
        }
    }
}
