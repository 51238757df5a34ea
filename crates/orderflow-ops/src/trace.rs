//! `orderctl trace <order-id | event-id>`: "was this event ever processed,
//! and where is it now?" in one screen.
//!
//! A missing order otherwise means searching the API, the outbox, the
//! broker, three consumers and three stores by hand. The trace reads each
//! hop's own record of the event: the write model's state and version, the
//! order's outbox rows (those still to publish, parked and why, from
//! `outbox`; those published, when and at which partition and offset, from
//! `outbox_published`, where the relay moves a row once Kafka acknowledged
//! it), whether any relay holds the shard lock, each
//! projector's inbox, held and parked rows and the version its store holds
//! now, the dead letters that name the order, and how far each consumer
//! group is behind on the order's partition. A verdict line sums it up.
//!
//! The inbox is read by event id, for the events the outbox still records
//! and the event asked about: once the relay prunes an old order's
//! published rows, its trace shows the stores' versions but no inbox rows.
//! An index by order would let the trace find them, at the price of a
//! second index entry on every event every projector records.

use std::collections::HashMap;

use anyhow::Context as _;
use orderflow_readstore::ReadStore as _;
use orderflow_readstore::search::SearchProjection;
use orderflow_readstore::status::StatusProjection;
use rdkafka::ClientConfig;
use serde_json::{Value, json};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::dlq::{DeadLetter, DeadLetterTopic};
use crate::lag::{GroupLag, PartitionLag, group_lag};

/// The relay's advisory-lock namespace (`outbox-relay`'s `LOCK_NAMESPACE`).
const RELAY_LOCK_NAMESPACE: i32 = 0x4f46;

/// Where to look.
#[derive(Debug)]
pub struct Sources<'a> {
    pub write: &'a PgPool,
    pub read: &'a PgPool,
    pub search: &'a SearchProjection,
    pub status: &'a StatusProjection,
    pub kafka: &'a ClientConfig,
    pub events_topic: &'a str,
    pub dead_letters: &'a DeadLetterTopic,
    /// (projector name, its consumer group).
    pub projectors: &'a [(String, String)],
}

/// One outbox row of the order.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxEntry {
    pub id: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub aggregate_version: i64,
    pub created_at: OffsetDateTime,
    pub published_at: Option<OffsetDateTime>,
    pub parked_at: Option<OffsetDateTime>,
    pub park_reason: Option<String>,
    pub kafka_partition: Option<i32>,
    pub kafka_offset: Option<i64>,
    pub traceparent: Option<String>,
}

/// One held (or parked) event of the order at one projector.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HeldEntry {
    pub consumer: String,
    pub event_id: Uuid,
    pub aggregate_version: i64,
    pub parked: bool,
    pub reason: String,
    pub held_at: OffsetDateTime,
}

/// What one projector knows of the order.
#[derive(Debug, Clone)]
pub struct ProjectorView {
    pub name: String,
    /// The version its store holds now (`None`: the order is not there).
    pub store_version: Option<i64>,
    /// Events its inbox recorded: event id, version, when.
    pub processed: Vec<(Uuid, i64, OffsetDateTime)>,
    pub held: Vec<HeldEntry>,
    /// Its group's lag on the order's partition, when that is known.
    pub lag: Option<PartitionLag>,
}

/// Everything the trace found.
#[derive(Debug, Clone)]
pub struct Trace {
    pub order_id: Uuid,
    /// The event asked about, when an event id was given.
    pub event_id: Option<Uuid>,
    /// The write model's status and version (`None`: no such order).
    pub write: Option<(String, i64)>,
    pub outbox: Vec<OutboxEntry>,
    /// Connections holding a relay shard lock now.
    pub relay_leaders: i64,
    pub projectors: Vec<ProjectorView>,
    pub dead_letters: Vec<DeadLetter>,
    /// The W3C trace id of the order's last event.
    pub trace_id: Option<String>,
    pub verdict: String,
}

/// Traces `id`, an order id or an event id.
///
/// Every hop is asked at once, each on its own connection: a trace takes as
/// long as its slowest source (reading the dead-letter topic, or a consumer
/// group's committed offsets), not the sum of a dozen round trips.
pub async fn trace(sources: &Sources<'_>, id: Uuid) -> anyhow::Result<Trace> {
    let (order_id, event_id) = resolve(sources, id).await?;
    let (write, (outbox, (lags, processed)), relay_leaders, dead_letters, stores) = tokio::try_join!(
        write_state(sources.write, order_id),
        // The groups' lag matters on the order's partition only, known once
        // the outbox answers; an order never published asks Kafka nothing.
        // So are the inbox rows: the inbox is keyed by event id only (an
        // index by order would cost every projector's insert), so the
        // order's event ids come from its outbox rows first.
        async {
            let outbox = outbox_rows(sources.write, order_id).await?;
            let mut events: Vec<Uuid> = outbox.iter().map(|r| r.event_id).collect();
            events.extend(event_id);
            let lags = async {
                match outbox.iter().rev().find_map(|r| r.kafka_partition) {
                    Some(partition) => group_lags(sources, partition).await,
                    None => Ok(Vec::new()),
                }
            };
            let (lags, processed) = tokio::try_join!(lags, processed(sources, &events))?;
            Ok((outbox, (lags, processed)))
        },
        relay_leaders(sources.write),
        order_dead_letters(sources.dead_letters, order_id),
        StoreViews::read(sources, order_id),
    )?;
    let projectors = stores.views(sources.projectors, &processed, lags);
    let trace_id = outbox
        .iter()
        .rev()
        .find_map(|r| r.traceparent.as_deref())
        .and_then(|t| t.split('-').nth(1))
        .map(str::to_owned);
    let mut trace = Trace {
        order_id,
        event_id,
        write,
        outbox,
        relay_leaders,
        projectors,
        dead_letters,
        trace_id,
        verdict: String::new(),
    };
    trace.verdict = verdict(&trace);
    Ok(trace)
}

async fn write_state(write: &PgPool, order_id: Uuid) -> anyhow::Result<Option<(String, i64)>> {
    sqlx::query_as("SELECT status, version FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_optional(write)
        .await
        .context("reading the write model (WRITE_DATABASE_URL)")
}

async fn outbox_rows(write: &PgPool, order_id: Uuid) -> anyhow::Result<Vec<OutboxEntry>> {
    sqlx::query_as(
        "SELECT id, event_id, event_type, aggregate_version, created_at, \
                NULL::timestamptz AS published_at, parked_at, park_reason, \
                NULL::int AS kafka_partition, NULL::bigint AS kafka_offset, traceparent \
         FROM outbox WHERE aggregate_id = $1 \
         UNION ALL \
         SELECT id, event_id, event_type, aggregate_version, created_at, published_at, \
                NULL, NULL, kafka_partition, kafka_offset, traceparent \
         FROM outbox_published WHERE aggregate_id = $1 \
         ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(write)
    .await
    .context("reading the outbox (WRITE_DATABASE_URL)")
}

async fn relay_leaders(write: &PgPool) -> anyhow::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks \
         WHERE locktype = 'advisory' AND classid = $1 AND objsubid = 2 AND granted \
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .bind(RELAY_LOCK_NAMESPACE)
    .fetch_one(write)
    .await
    .context("reading the relay's locks (WRITE_DATABASE_URL)")
}

async fn order_dead_letters(
    topic: &DeadLetterTopic,
    order_id: Uuid,
) -> anyhow::Result<Vec<DeadLetter>> {
    Ok(topic
        .list(None)
        .await
        .with_context(|| format!("reading the dead-letter topic {}", topic.topic))?
        .into_iter()
        .filter(|l| l.event.as_ref().is_some_and(|e| e.order_id == order_id))
        .collect())
}

/// Each projector group's lag on `partition`, the groups asked at once.
async fn group_lags(
    sources: &Sources<'_>,
    partition: i32,
) -> anyhow::Result<Vec<Option<PartitionLag>>> {
    futures::future::try_join_all(sources.projectors.iter().map(|(_, group)| async move {
        let lag: GroupLag = group_lag(sources.kafka, sources.events_topic, group)
            .await
            .with_context(|| format!("reading the lag of group {group} (KAFKA_BROKERS)"))?;
        Ok::<_, anyhow::Error>(
            lag.partitions
                .into_iter()
                .find(|l| l.partition == partition),
        )
    }))
    .await
}

/// The inbox rows of `events` at each projector, by primary key.
async fn processed(
    sources: &Sources<'_>,
    events: &[Uuid],
) -> anyhow::Result<Vec<(String, Uuid, i64, OffsetDateTime)>> {
    sqlx::query_as(
        "SELECT consumer, event_id, aggregate_version, processed_at FROM inbox \
         WHERE consumer = ANY($1) AND event_id = ANY($2) ORDER BY aggregate_version",
    )
    .bind(consumers(sources))
    .bind(events)
    .fetch_all(sources.read)
    .await
    .context("reading the inboxes (READ_DATABASE_URL)")
}

/// The projectors' names: the inbox's `consumer` column.
fn consumers(sources: &Sources<'_>) -> Vec<String> {
    sources
        .projectors
        .iter()
        .map(|(name, _)| name.clone())
        .collect()
}

/// The order an id belongs to, and the event when it is an event id.
async fn resolve(sources: &Sources<'_>, id: Uuid) -> anyhow::Result<(Uuid, Option<Uuid>)> {
    let order: Option<Uuid> = sqlx::query_scalar("SELECT id FROM orders WHERE id = $1")
        .bind(id)
        .fetch_optional(sources.write)
        .await
        .context("reading the write model (WRITE_DATABASE_URL)")?;
    if let Some(order) = order {
        return Ok((order, None));
    }
    let from_outbox: Option<Uuid> =
        sqlx::query_scalar("SELECT aggregate_id FROM outbox WHERE event_id = $1")
            .bind(id)
            .fetch_optional(sources.write)
            .await?;
    let from_read: Option<Uuid> = match from_outbox {
        Some(order) => Some(order),
        None => sqlx::query_scalar(
            "SELECT aggregate_id FROM inbox WHERE consumer = ANY($2) AND event_id = $1 \
             UNION SELECT aggregate_id FROM held_events WHERE event_id = $1 LIMIT 1",
        )
        .bind(id)
        .bind(consumers(sources))
        .fetch_optional(sources.read)
        .await
        .context("reading the inboxes (READ_DATABASE_URL)")?,
    };
    // Published but seen by no projector: the relay's record of it, which
    // has no event-id index (a scan, only on this rare path).
    let from_read: Option<Uuid> = match from_read {
        Some(order) => Some(order),
        None => sqlx::query_scalar(
            "SELECT aggregate_id FROM outbox_published WHERE event_id = $1 LIMIT 1",
        )
        .bind(id)
        .fetch_optional(sources.write)
        .await
        .context("reading the published outbox (WRITE_DATABASE_URL)")?,
    };
    if let Some(order) = from_read {
        return Ok((order, Some(id)));
    }
    let letters = sources.dead_letters.list(None).await?;
    letters
        .iter()
        .filter_map(|l| l.event.as_ref())
        .find(|e| e.event_id == id)
        .map(|e| (e.order_id, Some(id)))
        .with_context(|| {
            format!("{id} is neither an order nor an event any part of the pipeline has seen")
        })
}

/// What the read side holds of the order: each projector's held rows and
/// the version in each store.
struct StoreViews {
    held: Vec<HeldEntry>,
    versions: HashMap<&'static str, Option<i64>>,
}

impl StoreViews {
    async fn read(sources: &Sources<'_>, order_id: Uuid) -> anyhow::Result<Self> {
        let (held, summary, search, status) = tokio::try_join!(
            async {
                sqlx::query_as(
                    "SELECT consumer, event_id, aggregate_version, parked, reason, held_at \
                     FROM held_events WHERE aggregate_id = $1 ORDER BY aggregate_version",
                )
                .bind(order_id)
                .fetch_all(sources.read)
                .await
                .context("reading held events (READ_DATABASE_URL)")
            },
            async {
                sqlx::query_scalar("SELECT version FROM order_summary WHERE order_id = $1")
                    .bind(order_id)
                    .fetch_optional(sources.read)
                    .await
                    .context("reading order_summary (READ_DATABASE_URL)")
            },
            async {
                Ok(sources
                    .search
                    .load(&[order_id])
                    .await
                    .map_err(|e| anyhow::anyhow!("reading the search index (SEARCH_URL): {e}"))?
                    .get(&order_id)
                    .map(|s| s.version))
            },
            async {
                Ok(sources
                    .status
                    .read(&[order_id])
                    .await
                    .context("reading the status cache (REDIS_URL)")?
                    .get(&order_id)
                    .map(|stored| stored.version))
            },
        )?;
        Ok(Self {
            held,
            versions: HashMap::from([
                (orderflow_readstore::summary::NAME, summary),
                (orderflow_readstore::search::NAME, search),
                (orderflow_readstore::status::NAME, status),
            ]),
        })
    }

    /// One view per projector, with its inbox rows of the order and its
    /// group's lag on the order's partition when the order has one (`lags`
    /// in the projectors' order, empty when it has none).
    fn views(
        &self,
        projectors: &[(String, String)],
        processed: &[(String, Uuid, i64, OffsetDateTime)],
        lags: Vec<Option<PartitionLag>>,
    ) -> Vec<ProjectorView> {
        let mut lags = lags.into_iter();
        projectors
            .iter()
            .map(|(name, _)| ProjectorView {
                name: name.clone(),
                store_version: self.versions.get(name.as_str()).copied().flatten(),
                processed: processed
                    .iter()
                    .filter(|(c, ..)| c == name)
                    .map(|(_, e, v, at)| (*e, *v, *at))
                    .collect(),
                held: self
                    .held
                    .iter()
                    .filter(|h| &h.consumer == name)
                    .cloned()
                    .collect(),
                lag: lags.next().flatten(),
            })
            .collect()
    }
}

/// One line: where the order (or the event) is, or where it got stuck.
fn verdict(t: &Trace) -> String {
    let wanted = |row: &OutboxEntry| t.event_id.is_none_or(|e| e == row.event_id);
    if let Some(row) = t
        .outbox
        .iter()
        .find(|r| wanted(r) && r.parked_at.is_some() && r.published_at.is_none())
    {
        return format!(
            "parked in the outbox: v{} {} ({}); `orderctl outbox redrive --id {}` once fixed",
            row.aggregate_version,
            row.event_type,
            row.park_reason.as_deref().unwrap_or("no reason recorded"),
            row.id
        );
    }
    if let Some(row) = t
        .outbox
        .iter()
        .find(|r| wanted(r) && r.published_at.is_none())
    {
        let since = (OffsetDateTime::now_utc() - row.created_at).whole_seconds();
        let relay = if t.relay_leaders == 0 {
            "no relay holds the shard lock (relay down?)"
        } else {
            "a relay leads; is Kafka reachable?"
        };
        return format!(
            "stuck in the outbox: v{} {} unpublished for {since} s; {relay}",
            row.aggregate_version, row.event_type
        );
    }
    let letters: Vec<&DeadLetter> = t
        .dead_letters
        .iter()
        .filter(|l| {
            t.event_id
                .is_none_or(|e| l.event.as_ref().is_some_and(|ev| ev.event_id == e))
        })
        .collect();
    if let Some(letter) = letters.first() {
        let who = letter.consumer.as_deref().unwrap_or("a projector");
        let event = letter
            .event
            .as_ref()
            .map(|e| format!("v{} {}", e.version, e.event_type))
            .unwrap_or_default();
        return format!(
            "dead-lettered by {who}: {event}: {}{}",
            letter.reason.as_deref().unwrap_or("no reason given"),
            if letter.replayed {
                " (replayed since)"
            } else {
                ""
            }
        );
    }
    for view in &t.projectors {
        let held = view
            .held
            .iter()
            .find(|h| t.event_id.is_none_or(|e| e == h.event_id));
        if let Some(h) = held {
            let state = if h.parked { "parked" } else { "held" };
            return format!(
                "{state} by {}: v{} waits for v{} (its store has v{})",
                view.name,
                h.aggregate_version,
                view.store_version.unwrap_or(0) + 1,
                view.store_version.unwrap_or(0)
            );
        }
    }
    if let Some(event) = t.event_id {
        let applied: Vec<&str> = t
            .projectors
            .iter()
            .filter(|v| v.processed.iter().any(|(e, ..)| *e == event))
            .map(|v| v.name.as_str())
            .collect();
        return if applied.len() == t.projectors.len() {
            "processed by every projector".to_owned()
        } else {
            format!(
                "on its way: processed by {} of {}",
                applied.len(),
                t.projectors.len()
            )
        };
    }
    let Some((_, version)) = &t.write else {
        return "the write model has no such order".to_owned();
    };
    let behind: Vec<String> = t
        .projectors
        .iter()
        .filter(|v| v.store_version != Some(*version))
        .map(|v| format!("{} at v{}", v.name, v.store_version.unwrap_or(0)))
        .collect();
    if behind.is_empty() {
        format!("visible everywhere at v{version}")
    } else {
        format!("on its way to v{version}: {}", behind.join(", "))
    }
}

fn time(at: &OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Trace {
    /// The trace as JSON, for `--json`.
    pub fn to_json(&self) -> Value {
        json!({
            "verdict": self.verdict,
            "order_id": self.order_id,
            "event_id": self.event_id,
            "trace_id": self.trace_id,
            "write_model": self.write.as_ref().map(|(status, version)| json!({"status": status, "version": version})),
            "relay_leaders": self.relay_leaders,
            "outbox": self.outbox.iter().map(|r| json!({
                "id": r.id, "event_id": r.event_id, "event_type": r.event_type,
                "version": r.aggregate_version, "created_at": time(&r.created_at),
                "published_at": r.published_at.as_ref().map(time),
                "parked_at": r.parked_at.as_ref().map(time), "park_reason": r.park_reason,
                "partition": r.kafka_partition, "offset": r.kafka_offset,
            })).collect::<Vec<_>>(),
            "projectors": self.projectors.iter().map(|v| json!({
                "name": v.name, "store_version": v.store_version,
                "processed": v.processed.iter().map(|(e, version, at)| json!({"event_id": e, "version": version, "at": time(at)})).collect::<Vec<_>>(),
                "held": v.held.iter().map(|h| json!({"event_id": h.event_id, "version": h.aggregate_version, "parked": h.parked, "reason": h.reason, "since": time(&h.held_at)})).collect::<Vec<_>>(),
                "lag": v.lag.as_ref().map(|l| json!({"partition": l.partition, "events": l.events, "seconds": l.seconds})),
            })).collect::<Vec<_>>(),
            "dead_letters": self.dead_letters.iter().map(|l| json!({
                "partition": l.partition, "offset": l.offset, "consumer": l.consumer,
                "reason": l.reason, "replayed": l.replayed,
                "event_id": l.event.as_ref().map(|e| e.event_id),
                "version": l.event.as_ref().map(|e| e.version),
            })).collect::<Vec<_>>(),
        })
    }

    /// The trace as lines for a terminal, verdict first.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!("verdict: {}", self.verdict)];
        out.push(format!(
            "order {}{}  trace {}",
            self.order_id,
            self.event_id
                .map(|e| format!("  event {e}"))
                .unwrap_or_default(),
            self.trace_id.as_deref().unwrap_or("-")
        ));
        match &self.write {
            Some((status, version)) => out.push(format!("write model: {status} at v{version}")),
            None => out.push("write model: no such order".to_owned()),
        }
        out.push(format!(
            "outbox ({} rows, {} relay lock holder(s)):",
            self.outbox.len(),
            self.relay_leaders
        ));
        for r in &self.outbox {
            let state = match (&r.published_at, &r.parked_at) {
                (Some(at), _) => format!(
                    "published {} at {}:{}",
                    time(at),
                    r.kafka_partition.map_or("?".into(), |p| p.to_string()),
                    r.kafka_offset.map_or("?".into(), |o| o.to_string())
                ),
                (None, Some(at)) => format!(
                    "PARKED {} ({})",
                    time(at),
                    r.park_reason.as_deref().unwrap_or("")
                ),
                (None, None) => "UNPUBLISHED".to_owned(),
            };
            out.push(format!(
                "  v{:<3} {:<15} {}  created {}  {state}",
                r.aggregate_version,
                r.event_type,
                r.event_id,
                time(&r.created_at)
            ));
        }
        for v in &self.projectors {
            let lag = v
                .lag
                .as_ref()
                .map(|l| {
                    format!(
                        "partition {} lag {} events / {:.1} s",
                        l.partition, l.events, l.seconds
                    )
                })
                .unwrap_or_else(|| "lag unknown".to_owned());
            out.push(format!(
                "{:<18} store at {}  processed {}  held {}  {lag}",
                v.name,
                v.store_version.map_or("-".to_owned(), |s| format!("v{s}")),
                v.processed.len(),
                v.held.len()
            ));
            for h in &v.held {
                out.push(format!(
                    "  {} v{} {} since {}: {}",
                    if h.parked { "PARKED" } else { "held" },
                    h.aggregate_version,
                    h.event_id,
                    time(&h.held_at),
                    h.reason
                ));
            }
        }
        for l in &self.dead_letters {
            out.push(format!(
                "dead letter {}:{} by {}: {}{}",
                l.partition,
                l.offset,
                l.consumer.as_deref().unwrap_or("?"),
                l.reason.as_deref().unwrap_or(""),
                if l.replayed { " (replayed)" } else { "" }
            ));
        }
        out
    }
}
