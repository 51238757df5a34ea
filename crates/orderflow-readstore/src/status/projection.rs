//! The status projection: one compare-and-set script call per event,
//! pipelined per batch (one round trip), in per-order order.
//!
//! The keys live in a generation: `<prefix>order:<id>` is generation 0 (the
//! layout from before generations, and where an empty Redis starts),
//! `<prefix>g<N>:order:<id>` generation N. The pointer key
//! `<prefix>status:generation` names the live one and the live projector's
//! script reads it on every event, inside Redis, so a swap takes effect at
//! the next event with no cache to go stale. A projection pinned to a
//! generation ([`StatusProjection::pinned`]) is a rebuild's replay writing
//! its copy.

use orderflow_projector::{ApplyError, Event, Inbox, Outcome, Projection, timing};
use orderflow_readmodel::{status_after, validate};
use std::sync::LazyLock;
use std::time::Instant;

use redis::aio::ConnectionManager;
use redis::{ErrorKind, ServerErrorKind};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use tokio::sync::OnceCell;

/// The compare-and-set, sent by its hash (`EVALSHA`), not its text, with
/// every event.
static CAS: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(include_str!("cas.lua")));

/// The replay's compare-and-set into a pinned generation (no notification).
static REPLAY: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("replay.lua")));

/// One order's status read through the pointer, for the query API.
pub static READ: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("read.lua")));

/// Writes `<prefix>[g<N>:]order:<id>` hashes and publishes on
/// `<prefix>status-changes`.
#[derive(Debug, Clone)]
pub struct StatusProjection {
    pub client: redis::Client,
    pub prefix: String,
    /// `None`: the live generation, as the pointer names it; `Some(n)`:
    /// generation `n` only (a rebuild's copy).
    pub pinned: Option<u64>,
    connection: OnceCell<ConnectionManager>,
}

/// The key of an order's status hash in `generation`.
pub fn order_key(prefix: &str, generation: u64, order: uuid::Uuid) -> String {
    format!("{}{order}", order_keys(prefix, generation))
}

/// What every order's key in `generation` starts with.
pub fn order_keys(prefix: &str, generation: u64) -> String {
    if generation == 0 {
        format!("{prefix}order:")
    } else {
        format!("{prefix}g{generation}:order:")
    }
}

/// The key naming the live generation (absent: 0).
pub fn generation_key(prefix: &str) -> String {
    format!("{prefix}status:generation")
}

/// The key naming the generation a rebuild is filling, while it does.
pub fn rebuilding_key(prefix: &str) -> String {
    format!("{prefix}status:rebuilding")
}

/// The pub/sub channel of status changes.
pub fn channel(prefix: &str) -> String {
    format!("{prefix}status-changes")
}

fn transient(err: impl std::fmt::Display) -> ApplyError {
    ApplyError::Transient(err.to_string())
}

/// Connection trouble is worth retrying; an error Redis answered (a wrong
/// type, a script error) will repeat, so it is refused and dead-lettered.
fn classify(err: redis::RedisError) -> ApplyError {
    if err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || err.is_cluster_error()
    {
        ApplyError::Transient(err.to_string())
    } else {
        ApplyError::Refused(err.to_string())
    }
}

impl StatusProjection {
    /// A projection that connects on first use (a Redis outage at start-up
    /// is then just a transient error), and reconnects by itself after.
    pub fn new(client: redis::Client, prefix: String) -> Self {
        Self {
            client,
            prefix,
            pinned: None,
            connection: OnceCell::new(),
        }
    }

    /// This projection writing generation `generation` only, without
    /// change notifications: a rebuild's replay.
    pub fn pinned(mut self, generation: u64) -> Self {
        self.pinned = Some(generation);
        self
    }

    pub(crate) async fn connection(&self) -> Result<ConnectionManager, ApplyError> {
        self.connection
            .get_or_try_init(|| ConnectionManager::new(self.client.clone()))
            .await
            .cloned()
            .map_err(transient)
    }

    /// The batch's compare-and-sets, pipelined: one outcome per event.
    async fn write(&self, events: &[Event]) -> Result<Vec<Outcome>, ApplyError> {
        let mut conn = self.connection().await?;
        let channel = channel(&self.prefix);
        let (pointer, rebuilding) = (generation_key(&self.prefix), rebuilding_key(&self.prefix));
        let script = if self.pinned.is_some() {
            &*REPLAY
        } else {
            &*CAS
        };
        let mut pipe = redis::pipe();
        let invalid: Vec<Option<&'static str>> = events
            .iter()
            .map(|e| validate(e.version(), &e.event).err())
            .collect();
        for (event, invalid) in events.iter().zip(&invalid) {
            if invalid.is_some() {
                continue;
            }
            let status = status_after(&event.event);
            let updated_at = event
                .envelope
                .occurred_at
                .format(&Rfc3339)
                .map_err(transient)?;
            let message = json!({
                "order_id": event.order_id(),
                "status": status,
                "version": event.version(),
                "updated_at": updated_at,
            });
            match self.pinned {
                Some(generation) => pipe
                    .cmd("EVALSHA")
                    .arg(REPLAY.get_hash())
                    .arg(1)
                    .arg(order_key(&self.prefix, generation, event.order_id()))
                    .arg(event.version())
                    .arg(status)
                    .arg(&updated_at),
                None => pipe
                    .cmd("EVALSHA")
                    .arg(CAS.get_hash())
                    .arg(3)
                    .arg(&pointer)
                    .arg(&rebuilding)
                    .arg(&channel)
                    .arg(&self.prefix)
                    .arg(event.order_id().to_string())
                    .arg(event.version())
                    .arg(status)
                    .arg(&updated_at)
                    .arg(message.to_string()),
            };
        }
        let results: Vec<i64> = if invalid.iter().all(Option::is_some) {
            Vec::new()
        } else {
            match pipe.query_async(&mut conn).await {
                // The server lost its script cache (a restart): nothing in
                // the pipeline ran, so load the script and send it again.
                Err(err) if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    script
                        .prepare_invoke()
                        .load_async(&mut conn)
                        .await
                        .map_err(classify)?;
                    pipe.query_async(&mut conn).await.map_err(classify)?
                }
                result => result.map_err(classify)?,
            }
        };
        let mut results = results.into_iter();
        let outcomes: Vec<Outcome> = invalid
            .iter()
            .map(|invalid| match invalid {
                Some(reason) => Outcome::Invalid((*reason).to_owned()),
                None => match results.next() {
                    Some(1) => Outcome::Applied,
                    Some(0) => Outcome::Duplicate,
                    _ => Outcome::Gap,
                },
            })
            .collect();
        Ok(outcomes)
    }
}

impl Projection for StatusProjection {
    fn name(&self) -> &'static str {
        super::NAME
    }

    async fn apply(&self, events: &[Event], inbox: &Inbox) -> Result<Vec<Outcome>, ApplyError> {
        let write = async {
            let started = Instant::now();
            let outcomes = self.write(events).await?;
            timing::stage(self.name(), "store_write", started);
            Ok(outcomes)
        };
        // The inbox's insert runs beside the write and commits after it.
        inbox.record_while(events, write, transient).await
    }
}
