//! Figures the benchmarks print: throughput and latency percentiles.
//!
//! Latencies go into HDR histograms (the hdrhistogram crate): fixed memory
//! however long the run, and percentiles with three significant digits out
//! to the slowest sample, which sorting a vector of samples gives only
//! while the run is short.

use std::time::Duration;

use hdrhistogram::Histogram;

/// A latency histogram in microseconds, from 1 µs to 10 minutes, three
/// significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

/// Records `d` in a [`histogram`] (values past its range count as its top).
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(d.as_micros().try_into().unwrap_or(u64::MAX));
}

/// The `q` quantile (0..=1) of a [`histogram`], as a duration.
pub fn quantile(h: &Histogram<u64>, q: f64) -> Duration {
    Duration::from_micros(h.value_at_quantile(q))
}

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
pub fn stats(latencies: Vec<Duration>, elapsed: Duration) -> Stats {
    let mut h = histogram();
    for d in &latencies {
        record(&mut h, *d);
    }
    Stats {
        per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: quantile(&h, 0.50),
        p99: quantile(&h, 0.99),
        count: latencies.len(),
    }
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_give_percentiles_within_the_histogram_precision() {
        let latencies: Vec<Duration> = (1..=1000).map(Duration::from_millis).collect();
        let s = stats(latencies, Duration::from_secs(2));
        assert_eq!(s.count, 1000);
        assert!((s.per_sec - 500.0).abs() < 1e-9);
        let near = |d: Duration, ms: f64| (d.as_secs_f64() * 1000.0 - ms).abs() <= ms * 0.002;
        assert!(near(s.p50, 500.0), "p50 {:?}", s.p50);
        assert!(near(s.p99, 990.0), "p99 {:?}", s.p99);
    }
}
