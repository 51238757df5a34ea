//! The operator jobs against the real stores, in one test binary.

mod cli;
mod drift_record;
mod helpers;
mod rebuild;
mod reconcile;
mod seed_backfill;
mod setup;
