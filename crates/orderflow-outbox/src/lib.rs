//! The transactional outbox.
//!
//! A command writes its events into the `outbox` table in the same
//! transaction as the state change (guarantee 1); the relay later reads the
//! rows that are still unpublished, in id order, and marks them published
//! only after Kafka acknowledged every one of them (guarantee 2).
