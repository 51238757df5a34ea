//! The operator's jobs behind `orderctl`, as a library, so that benchmarks
//! and tests run exactly what an operator runs without depending on a
//! binary crate: the bulk seed of the write model, backfill of the read
//! models from it, reconciliation (and repair) of the two, the
//! rebuild of every read model beside the live one (shadow table, index
//! alias, key generation) with swap-in, and the dead-letter topic's list
//! and replay. Backfill and reconcile (with repair) see the read models
//! only as `orderflow_readstore::ReadStore`s: one code path for every
//! store, the stores picked at the edge ([`backfill::Targets`]).
//!
//! May depend on the store libraries (`orderflow-writemodel`,
//! `orderflow-readstore`, the projector runtime) and the service shell's
//! store settings; `orderctl` is its command line.

pub mod backfill;
pub mod dlq;
pub mod lag;
pub mod rebuild;
pub mod reconcile;
pub mod seed;
pub mod trace;
