//! Named fault points for tests of atomicity.
//!
//! A test arms a point; the command path calls [`Faults::check`] at that
//! point and fails there, inside its transaction. Disarmed (always, outside
//! tests) a check is one relaxed atomic load.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::ApiError;

/// After the state rows are written, before the outbox rows.
pub const AFTER_STATE_WRITE: &str = "after_state_write";
/// After state and outbox rows are written, just before commit.
pub const BEFORE_COMMIT: &str = "before_commit";

/// The armed fault points of one service instance.
#[derive(Debug, Default)]
pub struct Faults {
    any: AtomicBool,
    armed: Mutex<Vec<&'static str>>,
}

impl Faults {
    /// Makes every later pass through `point` fail.
    pub fn arm(&self, point: &'static str) {
        if let Ok(mut armed) = self.armed.lock() {
            armed.push(point);
        }
        self.any.store(true, Ordering::Relaxed);
    }

    /// Fails when `point` is armed.
    pub fn check(&self, point: &'static str) -> Result<(), ApiError> {
        if !self.any.load(Ordering::Relaxed) {
            return Ok(());
        }
        let armed = self
            .armed
            .lock()
            .map(|a| a.contains(&point))
            .unwrap_or(false);
        if armed {
            Err(ApiError::InjectedFault(point))
        } else {
            Ok(())
        }
    }
}
