//! The status projection: one compare-and-set script call per event,
//! pipelined per batch (one round trip), in per-order order.

use orderflow_projector::{ApplyError, Event, Inbox, Outcome, Projection, fold};
use orderflow_readmodel::{status_after, validate};
use std::sync::LazyLock;

use redis::aio::ConnectionManager;
use redis::{ErrorKind, ServerErrorKind};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use tokio::sync::OnceCell;

/// The compare-and-set, sent by its hash (`EVALSHA`), not its text, with
/// every event.
static CAS: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(include_str!("cas.lua")));

/// Writes `<prefix>order:<id>` hashes and publishes on `<prefix>status-changes`.
#[derive(Debug, Clone)]
pub struct StatusProjection {
    pub client: redis::Client,
    pub prefix: String,
    connection: OnceCell<ConnectionManager>,
}

/// The key of an order's status hash.
pub fn order_key(prefix: &str, order: uuid::Uuid) -> String {
    format!("{}{order}", order_keys(prefix))
}

/// What every order's key starts with.
pub fn order_keys(prefix: &str) -> String {
    format!("{prefix}order:")
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
            connection: OnceCell::new(),
        }
    }

    pub(crate) async fn connection(&self) -> Result<ConnectionManager, ApplyError> {
        self.connection
            .get_or_try_init(|| ConnectionManager::new(self.client.clone()))
            .await
            .cloned()
            .map_err(transient)
    }
}

impl Projection for StatusProjection {
    fn name(&self) -> &'static str {
        super::NAME
    }

    async fn apply(&self, events: &[Event], inbox: &Inbox) -> Result<Vec<Outcome>, ApplyError> {
        let mut conn = self.connection().await?;
        let channel = channel(&self.prefix);
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
            pipe.cmd("EVALSHA")
                .arg(CAS.get_hash())
                .arg(2)
                .arg(order_key(&self.prefix, event.order_id()))
                .arg(&channel)
                .arg(event.version())
                .arg(status)
                .arg(&updated_at)
                .arg(message.to_string());
        }
        let results: Vec<i64> = if invalid.iter().all(Option::is_some) {
            Vec::new()
        } else {
            match pipe.query_async(&mut conn).await {
                // The server lost its script cache (a restart): nothing in
                // the pipeline ran, so load the script and send it again.
                Err(err) if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    CAS.prepare_invoke()
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
        let processed = fold::processed(events, &outcomes);
        inbox.record_now(processed).await.map_err(transient)?;
        Ok(outcomes)
    }
}
