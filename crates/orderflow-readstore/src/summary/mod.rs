//! `order_summary`: one denormalised row per order in the read database.
//!
//! The summary is what the order screens and lists read. Inbox rows and
//! summary updates commit in one read-database transaction per batch, so a
//! crash can never apply a batch halfway or mark it processed without its
//! effects.

pub mod maintenance;
mod projection;
mod row;
pub mod shadow;

pub use projection::*;
pub use row::{COLUMNS, SummaryRow};

/// The projector's name: its consumer group, inbox consumer and service name.
pub const NAME: &str = "summary-projector";
