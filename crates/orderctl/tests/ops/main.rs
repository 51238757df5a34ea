//! The operator jobs against the real stores, in one test binary.

mod helpers;
mod rebuild;
mod reconcile;
mod seed_backfill;
mod setup;
