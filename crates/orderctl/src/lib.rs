//! The operator's jobs behind `orderctl`, as a library so that benchmarks
//! and tests run exactly what an operator runs.

pub mod backfill;
pub mod dlq;
pub mod rebuild;
pub mod reconcile;
pub mod seed;
