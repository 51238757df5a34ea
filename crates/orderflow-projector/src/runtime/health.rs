//! What `/readyz` says about the consumer loop, and the backoff behind it:
//! a store that keeps failing makes the projector not ready and waits
//! longer each time (jittered), up to `PROJECTOR_MAX_BACKOFF`.

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::Runtime;
use crate::Projection;

/// Last transient failure, shown by `/readyz` while the store is down.
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<Mutex<Option<String>>>);

impl Health {
    pub(super) fn set(&self, problem: Option<String>) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = problem;
        }
    }

    /// `Err(reason)` while the projector is retrying a store failure.
    pub fn check(&self) -> Result<(), String> {
        match self.0.lock().map(|s| s.clone()) {
            Ok(None) => Ok(()),
            Ok(Some(problem)) => Err(problem),
            Err(_) => Err("health state poisoned".into()),
        }
    }
}

impl<P: Projection> Runtime<P> {
    /// Marks the projector not ready, waits, and says whether to go on.
    pub(super) async fn transient(&self, problem: &str, token: &CancellationToken) -> bool {
        let attempt = self
            .failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .min(16)
            + 1;
        self.health.set(Some(problem.to_owned()));
        metrics::counter!("projector_store_errors_total", "projector" => self.projection.name())
            .increment(1);
        tracing::warn!(
            projector = self.projection.name(),
            problem,
            "projector.store unavailable; retrying"
        );
        let wait = orderflow_service::retry::delay(attempt, self.settings.max_backoff);
        tokio::select! {
            () = token.cancelled() => false,
            () = tokio::time::sleep(wait) => true,
        }
    }

    /// The store answered again: ready, and the backoff starts over.
    pub(super) fn healthy(&self) {
        self.health.set(None);
        self.failures.store(0, std::sync::atomic::Ordering::Relaxed);
    }
}
