//! The order domain, free of I/O.
//!
//! Commands, the order state machine and its invariants live here so they can
//! be tested exhaustively without a database, and so every service that needs
//! them (the command side, reconciliation) applies exactly the same rules.
//! Nothing in this crate may depend on tokio, sqlx, rdkafka or any other I/O
//! library: the services are the imperative shell around it.
//!
//! The shape is `decide(state, command) -> events | error` and
//! `evolve(state, event) -> state`: the shell loads the state (and the
//! catalog facts a command needs), calls [`order::decide`], and persists the
//! events it returns together with the state they produce.

pub mod error;
pub mod geo;
pub mod order;
pub mod sales_channel;
pub mod values;

pub use error::DomainError;
pub use order::{
    Command, Order, OrderEvent, OrderLine, OrderStatus, PlaceOrder, ProductFacts, decide, evolve,
};
pub use sales_channel::SalesChannel;
pub use values::{
    Currency, CustomerId, Email, Money, OrderId, ProductId, Quantity, Sku, Text, ValueError,
};
