//! The delay between attempts of every retry loop in the services.
//!
//! Exponential, capped, and jittered: a store that went away is retried by
//! every replica of every projector at once, and without jitter they all
//! knock in step when it comes back. The schedule is backon's (already in
//! the build through the Redis client); the loops keep their own shape
//! (they count attempts across calls and race the delay against shutdown),
//! so they ask for one delay at a time rather than handing backon a closure.

use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBuilder};

/// The first delay of every schedule.
pub const FIRST_DELAY: Duration = Duration::from_millis(100);

/// The delay before attempt number `attempt + 1`, after `attempt` failures
/// (1 = the first failure): twice the previous, from [`FIRST_DELAY`], plus a
/// random part of up to as much again, never more than `max`.
pub fn delay(attempt: u32, max: Duration) -> Duration {
    let max = max.max(FIRST_DELAY);
    schedule(max)
        .nth(attempt.saturating_sub(1).min(32) as usize)
        .unwrap_or(max)
        .min(max)
}

/// An endless schedule of delays up to `max`, for a loop that keeps its
/// place in it (start a new one when the loop succeeds).
pub fn schedule(max: Duration) -> impl Iterator<Item = Duration> {
    ExponentialBuilder::new()
        .with_min_delay(FIRST_DELAY)
        .with_max_delay(max)
        .with_jitter()
        .without_max_times()
        .build()
        .map(move |d| d.min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_from_the_first_and_stay_under_the_cap() {
        let max = Duration::from_secs(5);
        for attempt in 1..40 {
            let d = delay(attempt, max);
            let floor = FIRST_DELAY * 2u32.pow(attempt.saturating_sub(1).min(6));
            assert!(
                d >= floor.min(max),
                "attempt {attempt}: {d:?} below {floor:?}"
            );
            assert!(d <= max, "attempt {attempt}: {d:?} above the cap");
        }
        assert!(delay(1, max) < Duration::from_millis(200));
    }

    #[test]
    fn delays_are_jittered() {
        let draws: std::collections::HashSet<Duration> =
            (0..20).map(|_| delay(3, Duration::from_secs(5))).collect();
        assert!(draws.len() > 1, "twenty draws gave one delay: no jitter");
    }

    #[test]
    fn a_cap_below_the_first_delay_still_waits() {
        assert_eq!(delay(5, Duration::ZERO), FIRST_DELAY);
        assert!(
            schedule(Duration::from_millis(300))
                .take(10)
                .all(|d| d <= Duration::from_millis(300))
        );
    }
}
