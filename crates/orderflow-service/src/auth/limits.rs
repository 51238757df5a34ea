//! Per-subject limits: a request rate (GCRA, governor) and bounded counts
//! of long-lived requests (`min_version` waits, status streams). Both are
//! keyed on the verified token's principal, never on a header a client can
//! choose.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use super::error::Rejection;

/// Requests per second per subject, with a burst.
#[derive(Debug, Clone)]
pub struct RateLimit {
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl RateLimit {
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        let quota = Quota::per_second(per_second).allow_burst(burst);
        Self {
            limiter: Arc::new(DefaultKeyedRateLimiter::keyed(quota)),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one request of `principal`; refused with how long to wait.
    pub fn check(&self, principal: &str) -> Result<(), Rejection> {
        self.limiter
            .check_key(&principal.to_owned())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(self.clock.now());
                Rejection::TooMany {
                    retry_after_secs: wait.as_secs().max(1),
                    what: "this token's request rate is over its limit",
                }
            })
    }

    /// Forgets subjects whose buckets are full again (memory stays bounded
    /// by the recently active subjects).
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// At most `max` concurrent holders per subject.
#[derive(Debug, Clone)]
pub struct Slots {
    max: usize,
    what: &'static str,
    held: Arc<Mutex<HashMap<String, usize>>>,
}

/// One held slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    principal: String,
    held: Arc<Mutex<HashMap<String, usize>>>,
}

impl Slots {
    /// `what` names the limit in the 429's detail.
    pub fn new(max: usize, what: &'static str) -> Self {
        Self {
            max,
            what,
            held: Arc::default(),
        }
    }

    /// A slot for `principal`, or 429 when it holds `max` already.
    pub fn acquire(&self, principal: &str) -> Result<Slot, Rejection> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(principal.to_owned()).or_default();
        if *count >= self.max {
            return Err(Rejection::TooMany {
                retry_after_secs: 1,
                what: self.what,
            });
        }
        *count += 1;
        Ok(Slot {
            principal: principal.to_owned(),
            held: self.held.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.principal) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.principal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_per_subject_and_freed_on_drop() {
        let slots = Slots::new(2, "streams");
        let a1 = slots.acquire("a").expect("first");
        let _a2 = slots.acquire("a").expect("second");
        assert!(slots.acquire("a").is_err(), "a third is refused");
        let _b = slots.acquire("b").expect("another subject is not affected");
        drop(a1);
        assert!(slots.acquire("a").is_ok(), "a freed slot is usable again");
    }

    #[test]
    fn the_rate_is_per_subject() {
        let one = NonZeroU32::MIN;
        let limit = RateLimit::new(one, one);
        assert!(limit.check("a").is_ok());
        match limit.check("a") {
            Err(Rejection::TooMany {
                retry_after_secs, ..
            }) => assert!(retry_after_secs >= 1),
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(limit.check("b").is_ok(), "b has its own bucket");
    }
}
