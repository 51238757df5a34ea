//! The write database's schema: customers, products, stock, orders and their
//! lines, payments, shipments, the transactional outbox and the idempotency
//! records.
//!
//! The schema lives in a library, not in `order-command`, because three
//! processes need it without needing each other: the command service writes
//! it, the relay reads the outbox, and `orderctl setup` (the topology job
//! every deployment runs first) applies it. It may depend on sqlx only.

/// The write database's migrations, embedded at compile time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
