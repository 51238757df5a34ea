//! The query API over the whole pipeline: every test talks HTTP to one
//! world (order-command, relay, the three projectors and order-query, all
//! in-process on their own databases, topic, index and key prefix), and
//! isolates its data by creating its own customer and products.

mod bola;
mod consistency;
mod hostile;
mod lists;
mod openapi;
mod status;
mod v2_fields;
mod world;
