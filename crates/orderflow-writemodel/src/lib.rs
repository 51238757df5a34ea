//! The write database's schema: customers, products, stock, orders and their
//! lines, payments, shipments, the transactional outbox and the idempotency
//! records.
//!
//! The schema lives in a library, not in `order-command`, because three
//! processes need it without needing each other: the command service writes
//! it, the relay reads the outbox, and `orderctl setup` (the topology job
//! every deployment runs first) applies it. It also holds the readback of
//! the write model as order summaries, the reference the query API's strong
//! reads, `orderctl` and the end-to-end tests compare read models with. It
//! may depend on sqlx and the read-model types only; no I/O besides the
//! write database.

/// The write database's migrations, embedded at compile time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub mod readback;
