//! The published event contract other teams subscribe to.
//!
//! The envelope and the order events of every schema version are defined
//! once here and mirrored by the JSON Schemas in `proto/events/`; producers
//! serialise and consumers decode through this crate only, so a contract
//! change is one reviewed diff. [`decode`] is the one place where older
//! schema versions are upcast to today's shape ([`CurrentEvent`]), and where
//! versions newer than this build knows are refused as "newer schema".
//!
//! Pure: serde and the domain types, no I/O.

pub mod decode;
pub mod envelope;
pub mod event;
pub mod upcast;
pub mod v1;
pub mod v2;

pub use decode::{DecodeError, decode, decode_up_to};
pub use envelope::{AGGREGATE_TYPE, Envelope, EventMeta};
pub use event::{CURRENT_VERSIONS, CurrentEvent, current_version};
