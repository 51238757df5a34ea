//! Smoke tests: each engine, reached through the client crate the services use.
//!
//! They prove the local stack is real and configured as the services need it
//! (idempotent producer with `acks=all`, external versioning, pub/sub), and
//! they fail with the engine's name when it is down.

mod kafka;
mod postgres;
mod redis;
mod search;
