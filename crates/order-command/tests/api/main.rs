//! The command API, end to end against a real Postgres: every test spawns
//! the service in-process on port 0 with a database of its own.

mod atomicity;
mod bola;
mod catalog;
mod concurrency;
mod conformance;
mod contracts;
mod helpers;
mod hostile;
mod idempotency;
mod lifecycle;
mod openapi;
mod tokens;
