//! The relay against real Postgres and Kafka: ordering, the visibility gap,
//! crashes (`kill -9`), a broker restart, two relays at once, and many
//! batches in flight.

mod faults;
mod helpers;
mod publishing;
mod window;
