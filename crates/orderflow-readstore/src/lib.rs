//! The read stores, one adapter each: what every process that touches a
//! read model needs, whatever process it is.
//!
//! A projector applies events to a store; `orderctl` backfills, reconciles,
//! repairs and rebuilds the same store; the query API reads it; the
//! projector suite checks it. So the code that knows a store lives here,
//! once, and not in whichever service happened to write it first:
//!
//! - [`summary`]: `order_summary` in the read database (Postgres), one row
//!   per order, written in one statement per batch with the version guard
//!   repeated in SQL;
//! - [`search`]: the `orders` index behind an alias (Elasticsearch or
//!   OpenSearch), the order version as the document's external version;
//! - [`status`]: the Redis status cache, a compare-and-set Lua script per
//!   event plus the change channel;
//! - [`reconcile_runs`]: not a read model but the record of the drift
//!   checks over them, kept in the read database beside `order_summary`.
//!
//! Each adapter is two traits over one type: the store's
//! [`orderflow_projector::Projection`] (how a batch of events changes it,
//! in its `projection.rs`) and its [`ReadStore`] (in its `maintenance.rs`:
//! reads by id, a walk of every id, version-guarded backfill, guarded
//! replace and delete, and the field-by-field comparison with the write
//! model), which backfill, reconcile and repair in `orderflow-ops` and the
//! projector suite drive as `&dyn ReadStore`, one code path for every
//! store. Beside them, the copy a rebuild fills next to the live store
//! with the swap that puts it in place ([`summary::shadow`]: a shadow table
//! swapped in one transaction; [`status::generation`]: a key generation
//! swapped by one pointer; the search index's alias).
//! A new read store is one new module here implementing both traits and
//! one thin projector binary; the operator jobs and the suite need no
//! change beyond naming it.
//!
//! May depend on the projector runtime, the read-model fold and the store
//! clients; no service crate depends on another, and none of them on this
//! crate's internals beyond these modules.

pub mod reconcile_runs;
pub mod search;
pub mod status;
mod store;
pub mod summary;

pub use store::{ReadStore, Stored, differing_fields};
