//! Drift metrics for alerting, from the reconcile run records in the read
//! database (`orderctl reconcile` writes one per run).
//!
//! Reconcile is a job that comes and goes, so it cannot be scraped; the
//! query service is always up and already reads the read database. It
//! reads each model's newest complete check every `DRIFT_METRICS_INTERVAL`
//! (one small query, never per scrape) and sets:
//!
//! - `orderflow_drift_orders{model,kind}`: drifted orders the check found;
//! - `orderflow_drift_unresolved_orders{model}`: what it left (found minus
//!   repaired), what the drift alert fires on;
//! - `orderflow_drift_check_timestamp_seconds{model}`: when it finished;
//! - `orderflow_drift_check_age_seconds{model}`: how long ago that was, as
//!   of the last refresh, so an alert fires when checks stop running.
//!
//! A model never checked has no series (the staleness alert's `absent`
//! covers it).

use std::time::Duration;

use orderflow_readstore::reconcile_runs::{self, KINDS, LatestCheck};
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// Refreshes the drift gauges from `read` every `every` until cancelled.
pub async fn export(read: PgPool, every: Duration, token: CancellationToken) -> anyhow::Result<()> {
    loop {
        match reconcile_runs::latest_per_model(&read).await {
            Ok(latest) => publish(&latest, OffsetDateTime::now_utc()),
            // A missing table (read migrations not applied yet) or a
            // database away: the gauges keep their last values.
            Err(e) => tracing::warn!(error = %e, "order_query.drift reading reconcile runs failed"),
        }
        tokio::select! {
            () = token.cancelled() => return Ok(()),
            () = tokio::time::sleep(every) => {}
        }
    }
}

fn publish(latest: &[LatestCheck], now: OffsetDateTime) {
    for l in latest {
        let model = l.check.model.clone();
        for kind in KINDS {
            let n = l.check.drift.get(kind).copied().unwrap_or(0);
            metrics::gauge!("orderflow_drift_orders", "model" => model.clone(), "kind" => kind)
                .set(n as f64);
        }
        metrics::gauge!("orderflow_drift_unresolved_orders", "model" => model.clone())
            .set(l.check.unresolved() as f64);
        metrics::gauge!("orderflow_drift_check_timestamp_seconds", "model" => model.clone())
            .set(l.finished_at.unix_timestamp() as f64);
        metrics::gauge!("orderflow_drift_check_age_seconds", "model" => model)
            .set((now - l.finished_at).as_seconds_f64().max(0.0));
    }
}
