//! The relay against real Postgres and Kafka: ordering, the visibility gap,
//! crashes (`kill -9`), a broker restart, and two relays at once.

mod faults;
mod helpers;
mod publishing;
