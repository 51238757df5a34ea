//! The Redis status cache and its change channel.
//!
//! Each order has `{status, version, updated_at}` written by a compare-and-set
//! on version (a Lua script, so check and write are one atomic step), and
//! every change is published on a pub/sub channel that the query API streams
//! to clients. Redis keeps no persistence here: after losing its data the
//! cache is refilled from the write model by `orderctl backfill --only
//! status`, and until then the query API falls back to the summary. The
//! keys live in generations behind one pointer key, so `orderctl rebuild
//! status` can fill a new generation and swap it in ([`generation`]).

pub mod generation;
pub mod maintenance;
mod projection;

pub use projection::*;

/// The projector's name: its consumer group, inbox consumer and service name.
pub const NAME: &str = "status-projector";
