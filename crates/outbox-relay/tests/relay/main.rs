//! The relay against real Postgres and Kafka: ordering, the visibility gap,
//! crashes (`kill -9`), a broker restart, two relays at once, and many
//! batches in flight; marking by moving rows to `outbox_published`, an
//! upgrade in place, retention.

mod faults;
mod helpers;
mod marking;
mod publishing;
mod window;
