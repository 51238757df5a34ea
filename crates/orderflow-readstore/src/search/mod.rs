//! The `orders` search index, behind an alias over a versioned index.
//!
//! Documents carry the order version as their external version, so the
//! search engine itself rejects a stale write, even from a second instance
//! during a rebalance; the inbox in the read database is written only after
//! a `_bulk` request succeeded.

pub mod index;
pub mod maintenance;
mod projection;

pub use projection::*;

/// The projector's name: its consumer group, inbox consumer and service name.
pub const NAME: &str = "search-projector";
