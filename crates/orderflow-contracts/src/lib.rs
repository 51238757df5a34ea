//! The published event contract other teams subscribe to.
//!
//! The envelope and the v1 order events are defined once here and mirrored by
//! the JSON Schemas in `proto/events/`; producers serialise and consumers
//! decode through this crate only, so a contract change is one reviewed diff.
//! Decoding is the one place where older schema versions would be upcast to
//! the current shape; today v1 is the only version.

pub mod envelope;
pub mod v1;

pub use envelope::{AGGREGATE_TYPE, Envelope, EventMeta};
pub use v1::{DecodeError, OrderEventV1, decode};
