//! The projector runtime shared by the three read-model projectors.
//!
//! It owns everything that makes a projector safe under redelivery,
//! reordering and poison messages, so each projector only says how a batch
//! of events changes its store:
//!
//! - the Kafka consumer loop (one consumer group per projector), batching
//!   that keeps each order's events in partition order, offsets committed
//!   only after the batch's effects are durable;
//! - decoding through `orderflow-contracts`, which upcasts older schema
//!   versions, with anything undecodable (malformed, unknown type, a newer
//!   schema version: reason "newer schema: …") dead-lettered at once;
//! - the inbox `(consumer, event_id)` that skips redelivered events;
//! - held events: a version beyond `stored + 1` is kept in `held_events`,
//!   retried whenever its order advances and on a timer, and parked (with a
//!   metric and a log line) when the gap stays open past a bound; it is never
//!   applied out of order;
//! - retries with backoff for transient store errors (the projector reports
//!   not ready meanwhile) and a dead-letter topic for events that still fail
//!   after N attempts, with the reason in headers;
//! - metrics: lag per partition, events applied/duplicate/held/parked/
//!   dead-lettered, commit→visible latency.

pub mod dlq;
pub mod fold;
pub mod held;
pub mod inbox;
pub mod runtime;
pub mod service;
pub mod stalls;
pub mod timing;

use std::future::Future;

use orderflow_contracts::{CurrentEvent, Envelope};
use orderflow_service::Readiness;
use orderflow_service::stores::kafka::{self, KafkaArgs};
use orderflow_service::stores::postgres::{self, ReadDbArgs};
use uuid::Uuid;

pub use inbox::Inbox;
pub use runtime::{Runtime, RuntimeSettings};

/// The read database's schema: runtime tables and the order summary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// One decoded event, with where it came from.
#[derive(Debug, Clone)]
pub struct Event {
    pub envelope: Envelope,
    pub event: CurrentEvent,
    pub partition: i32,
    pub offset: i64,
    /// The W3C trace context the event was published with (`None` for held
    /// events read back from the database).
    pub traceparent: Option<String>,
}

impl Event {
    /// The order this event belongs to.
    pub fn order_id(&self) -> Uuid {
        self.envelope.aggregate_id
    }

    /// Its version within the order.
    pub fn version(&self) -> i64 {
        self.envelope.aggregate_version
    }
}

/// What applying one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied as the next version.
    Applied,
    /// Already reflected in the store; nothing changed.
    Duplicate,
    /// An earlier version is missing; hold it.
    Gap,
    /// Can never apply; dead-letter it with this reason.
    Invalid(String),
}

/// Why a batch could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The store is unreachable or overloaded: retry the batch with backoff.
    #[error("transient store error: {0}")]
    Transient(String),
    /// The store refused something in the batch: find the event, retry it
    /// alone, dead-letter it if it keeps failing.
    #[error("store refused the batch: {0}")]
    Refused(String),
}

/// How a read model changes with a batch of events.
///
/// Events arrive grouped by nothing but in per-order order. The projection
/// must apply each event only as version `stored + 1` and return one outcome
/// per event, in order, and must record applied and duplicate events in the
/// inbox no earlier than its store write is durable (in the same
/// transaction where the store is the read database).
pub trait Projection: Send + Sync + 'static {
    /// Consumer group and inbox consumer name.
    fn name(&self) -> &'static str;

    /// Whether [`Projection::apply`] reads the inbox itself (in the same
    /// transaction as its store's rows), so the runtime's own check before
    /// each batch would only cost a round trip. Such a projection must
    /// return [`Outcome::Duplicate`] for every event the inbox has seen and
    /// leave its store untouched by them. One that does not must have
    /// committed each batch's records, by themselves, before `apply`
    /// returns ([`Inbox::record_while`], [`Inbox::record_now`]): the batch
    /// read ahead counts the ids recorded meanwhile as seen.
    fn checks_inbox(&self) -> bool {
        false
    }

    /// Applies `events`; see the trait docs.
    fn apply(
        &self,
        events: &[Event],
        inbox: &Inbox,
    ) -> impl Future<Output = Result<Vec<Outcome>, ApplyError>> + Send;
}

/// Settings every projector has.
#[derive(Debug, Clone, clap::Args)]
pub struct ProjectorArgs {
    /// Read database: holds the projector's inbox and held events.
    #[command(flatten)]
    pub read_db: ReadDbArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub runtime: RuntimeSettings,
    /// Apply pending read-database migrations at start-up (turn off when a
    /// migration job owns the schema).
    #[arg(long, env = "MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,
}

impl ProjectorArgs {
    /// The read-database pool.
    pub fn pool(&self, name: &str) -> anyhow::Result<sqlx::PgPool> {
        Ok(postgres::pool(
            &self.read_db.url,
            self.read_db.max_connections,
            name,
        )?)
    }

    /// The dead-letter topic this projector writes to.
    pub fn dlq_topic(&self) -> String {
        self.runtime.dlq_topic(&self.kafka.events_topic)
    }

    /// Readiness checks for what every projector needs: its read database
    /// (inbox), Kafka, and a dead-letter topic it can write to (checked from
    /// start-up, so a missing one is named before the first poison event
    /// needs it). Projectors add the check of their own store.
    pub fn readiness(&self, name: &str, pool: &sqlx::PgPool) -> anyhow::Result<Readiness> {
        let kafka_probe = kafka::prober(&self.kafka, name)?;
        let pool = pool.clone();
        let dlq_topic = self.dlq_topic();
        Ok(Readiness::new()
            .check("postgres", move || postgres::probe(pool.clone()))
            .check("kafka", {
                let probe = kafka_probe.clone();
                move || {
                    let probe = probe.clone();
                    async move { probe.probe().await }
                }
            })
            .check("dead-letter topic", move || {
                let probe = kafka_probe.clone();
                let topic = dlq_topic.clone();
                async move { probe.probe_topic(&topic).await }
            }))
    }
}
