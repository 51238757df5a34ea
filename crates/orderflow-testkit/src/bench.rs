//! Figures the benchmarks print: throughput and latency percentiles.

use std::time::Duration;

/// Throughput and latency of one measured run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Completed operations per second of `elapsed`.
    pub per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// Operations measured.
    pub count: usize,
}

/// Nearest-rank percentile of sorted samples (`q` in 0..=1).
pub fn percentile<T: Copy>(sorted: &[T], q: f64) -> T {
    assert!(!sorted.is_empty(), "no samples");
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

/// The stats of `latencies`, one per operation, completed in `elapsed`.
pub fn stats(mut latencies: Vec<Duration>, elapsed: Duration) -> Stats {
    latencies.sort_unstable();
    Stats {
        per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        count: latencies.len(),
    }
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
