//! The order domain, free of I/O.
//!
//! Commands, the order state machine and its invariants live here so they can
//! be tested exhaustively without a database, and so every service that needs
//! them (the command side, reconciliation) applies exactly the same rules.
//! Nothing in this crate may depend on tokio, sqlx, rdkafka or any other I/O
//! library: the services are the imperative shell around it.
