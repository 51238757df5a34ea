//! One active relay per shard, by a Postgres advisory lock.
//!
//! Every replica tries to take each shard's session-level advisory lock on a
//! dedicated connection. The holder publishes that shard; the others retry
//! every `standby_poll`. The lock lives exactly as long as the holder's
//! connection: when the process dies, even by `kill -9`, the kernel closes
//! the socket, Postgres ends the session and a standby takes over on its next
//! try. The leader does all of its reads and writes on that same connection,
//! so a leader that has lost its lock has also lost the means to publish.
//!
//! A process that is alive but stuck keeps its socket open, so the lock
//! connection also asks the server to end it when it goes quiet: TCP
//! keepalives and `tcp_user_timeout` for a host or network that vanished,
//! `idle_session_timeout` for a frozen process (a working leader touches
//! the connection every poll interval, and pings it while it waits on
//! Kafka). And a leader that cannot get acknowledgements from Kafka for
//! `RELAY_KAFKA_GIVE_UP` gives the lock up itself and stands back, so a
//! replica that may reach Kafka can try.

use std::sync::Arc;
use std::time::{Duration, Instant};

use orderflow_outbox::{NOTIFY_CHANNEL, Shard};
use rdkafka::producer::FutureProducer;
use sqlx::postgres::{PgConnectOptions, PgListener};
use sqlx::{ConnectOptions as _, Connection as _, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::pipeline::{self, Pipeline, Route};
use crate::publisher::{Limits, Outcome, Waits};

/// First of the two advisory-lock keys; the second is the shard index.
const LOCK_NAMESPACE: i32 = 0x4f46;

/// What every shard worker shares.
pub struct Relay {
    pub pool: PgPool,
    pub connect: PgConnectOptions,
    pub producer: FutureProducer,
    pub topic: String,
    pub batch_size: i64,
    /// Batches in flight at once.
    pub pipeline_depth: usize,
    pub poll_interval: Duration,
    pub standby_poll: Duration,
    /// How long a frozen or cut-off leader keeps the lock at most.
    pub leader_timeout: Duration,
    /// How long a leader tries Kafka before it gives the lock up.
    pub kafka_give_up: Duration,
    /// The topic's `max.message.bytes`.
    pub limits: Limits,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("topic", &self.topic)
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

/// Runs one shard until `token` is cancelled: stand by until this process
/// holds the shard's lock, publish while it does, stand by again if it is
/// lost.
pub async fn run_shard(
    relay: Arc<Relay>,
    shard: Shard,
    token: CancellationToken,
) -> anyhow::Result<()> {
    let label = shard.index.to_string();
    // A standby reports 0 from the start, so "no leader" can be alerted on.
    metrics::gauge!("relay_leader", "shard" => label.clone()).set(0.0);
    loop {
        let Some(mut conn) = acquire(&relay, shard, &token).await else {
            return Ok(());
        };
        tracing::info!(shard = shard.index, "relay.leader acquired");
        metrics::gauge!("relay_leader", "shard" => label.clone()).set(1.0);
        let result = lead(&relay, &mut conn, shard, &token).await;
        metrics::gauge!("relay_leader", "shard" => label.clone()).set(0.0);
        // Closing the connection releases the lock for a standby.
        let _ = conn.close().await;
        match result {
            Ok(Led::Cancelled) => return Ok(()),
            Ok(Led::GaveUp(silent)) => {
                tracing::error!(
                    shard = shard.index,
                    seconds = silent.as_secs(),
                    "relay.leader kafka unreachable; gave the lock up for a standby"
                );
                metrics::counter!("relay_leader_give_ups_total", "shard" => label.clone())
                    .increment(1);
                // Stand back long enough for a standby's next try to win.
                if sleep_or_cancel(relay.standby_poll * 3, &token).await {
                    return Ok(());
                }
            }
            Err(err) => {
                tracing::warn!(shard = shard.index, error = %err, "relay.leader lost; standing by");
                if sleep_or_cancel(relay.standby_poll, &token).await {
                    return Ok(());
                }
            }
        }
    }
}

/// Waits until this process holds the shard's lock; `None` when cancelled.
async fn acquire(relay: &Relay, shard: Shard, token: &CancellationToken) -> Option<PgConnection> {
    loop {
        match try_lock(relay, shard).await {
            Ok(Some(conn)) => return Some(conn),
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(shard = shard.index, error = %err, "relay.leader lock attempt failed")
            }
        }
        if sleep_or_cancel(relay.standby_poll, token).await {
            return None;
        }
    }
}

async fn try_lock(relay: &Relay, shard: Shard) -> sqlx::Result<Option<PgConnection>> {
    let timeout_ms = relay.leader_timeout.as_millis().to_string();
    let keepalive = (relay.leader_timeout.as_secs() / 3).max(1).to_string();
    let mut conn = relay
        .connect
        .clone()
        .options([
            ("idle_session_timeout", timeout_ms.as_str()),
            ("tcp_user_timeout", timeout_ms.as_str()),
            ("tcp_keepalives_idle", keepalive.as_str()),
            ("tcp_keepalives_interval", keepalive.as_str()),
            ("tcp_keepalives_count", "3"),
        ])
        .connect()
        .await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
        .bind(LOCK_NAMESPACE)
        .bind(shard.index as i32)
        .fetch_one(&mut conn)
        .await?;
    if locked {
        Ok(Some(conn))
    } else {
        let _ = conn.close().await;
        Ok(None)
    }
}

/// How a term as leader ended.
enum Led {
    Cancelled,
    /// Kafka acknowledged nothing for this long.
    GaveUp(Duration),
}

/// Publishes while holding the lock. `Err` when the database connection
/// failed (leadership is then in doubt).
async fn lead(
    relay: &Relay,
    conn: &mut PgConnection,
    shard: Shard,
    token: &CancellationToken,
) -> anyhow::Result<Led> {
    // Listen before the first read, so no commit between the read and the
    // wait can go unnoticed.
    let mut listener = PgListener::connect_with(&relay.pool).await?;
    listener.listen(NOTIFY_CHANNEL).await?;
    let mut backoff = Duration::from_millis(100);
    let mut failing_since: Option<Instant> = None;
    let waits = Waits {
        ping_every: (relay.leader_timeout / 3).max(Duration::from_millis(200)),
        give_up: relay.kafka_give_up,
    };
    let mut window = Pipeline::new(relay.pipeline_depth, relay.batch_size);
    let route = Route {
        producer: &relay.producer,
        topic: &relay.topic,
        limits: &relay.limits,
        shard,
    };
    // Marks run here, beside the lock connection's next read, committing
    // without waiting for the WAL flush (see `pipeline`): a lost mark only
    // means its rows are sent again.
    let mut marker = relay
        .connect
        .clone()
        .options([("synchronous_commit", "off")])
        .connect()
        .await?;
    loop {
        if window.is_empty() {
            if !token.is_cancelled() {
                window.fill(conn, &route, &[]).await?;
            }
            if window.is_empty() {
                failing_since = None;
                // Cancelled: stop reading, but finish what is in flight.
                if token.is_cancelled() || wait_for_work(relay, &mut listener, token).await {
                    return Ok(Led::Cancelled);
                }
                continue;
            }
        }
        let Some(done) = window.complete_oldest(conn, waits).await? else {
            return Ok(Led::GaveUp(waits.give_up));
        };
        let marking = done.acked_ids();
        let refill = !token.is_cancelled() && !done.failed();
        let next = async {
            if refill {
                window.fill(conn, &route, &marking).await.map(Some)
            } else {
                Ok(None)
            }
        };
        let (marked, filled) = if relay.pipeline_depth > 1 {
            tokio::join!(pipeline::mark(&mut marker, &done), next)
        } else {
            // One batch at a time: mark, then read the next.
            let marked = pipeline::mark(&mut marker, &done).await;
            (marked, next.await)
        };
        marked?;
        filled?;
        match done.outcome() {
            Outcome::Published { published, parked } => {
                backoff = Duration::from_millis(100);
                failing_since = None;
                tracing::debug!(
                    shard = shard.index,
                    published,
                    parked,
                    "relay.publish batch"
                );
            }
            Outcome::Idle => {}
            Outcome::Unreachable(silent) => return Ok(Led::GaveUp(silent)),
            Outcome::Retry(err) => {
                metrics::counter!("relay_publish_errors_total").increment(1);
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= relay.kafka_give_up {
                    return Ok(Led::GaveUp(since.elapsed()));
                }
                tracing::warn!(shard = shard.index, error = %err, backoff = ?backoff, "relay.publish kafka refused; retrying the batch");
                if sleep_or_cancel(backoff, token).await {
                    return Ok(Led::Cancelled);
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Waits for the polling interval or a re-drive's notification; true when
/// cancelled.
async fn wait_for_work(
    relay: &Relay,
    listener: &mut PgListener,
    token: &CancellationToken,
) -> bool {
    tokio::select! {
        () = token.cancelled() => true,
        received = listener.recv() => {
            if let Err(err) = received {
                // The listener reconnects on its next call; polling covers the gap.
                tracing::debug!(error = %err, "relay.notify listener error");
            }
            // Many commits may have notified; one read serves them all.
            while let Some(_pending) = listener.next_buffered() {}
            false
        }
        () = tokio::time::sleep(relay.poll_interval) => false,
    }
}

/// Sleeps; true when cancelled first.
async fn sleep_or_cancel(duration: Duration, token: &CancellationToken) -> bool {
    tokio::select! {
        () = token.cancelled() => true,
        () = tokio::time::sleep(duration) => false,
    }
}

/// Keeps `relay_backlog_rows` and `relay_backlog_oldest_seconds` current and
/// deletes published rows older than `retention`, in small batches.
pub async fn housekeeping(
    pool: PgPool,
    retention: Duration,
    token: CancellationToken,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            () = token.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        ticks += 1;
        let Ok(mut conn) = pool.acquire().await else {
            continue;
        };
        match orderflow_outbox::backlog(&mut conn).await {
            Ok((rows, age)) => {
                metrics::gauge!("relay_backlog_rows").set(rows as f64);
                metrics::gauge!("relay_backlog_oldest_seconds").set(age);
            }
            Err(err) => tracing::warn!(error = %err, "relay.backlog query failed"),
        }
        match orderflow_outbox::parked_count(&mut conn).await {
            Ok(parked) => metrics::gauge!("relay_parked_rows").set(parked as f64),
            Err(err) => tracing::warn!(error = %err, "relay.parked query failed"),
        }
        if ticks.is_multiple_of(12) {
            loop {
                match orderflow_outbox::prune(&mut conn, retention, 1000).await {
                    Ok(1000) => continue,
                    Ok(n) => {
                        metrics::counter!("relay_pruned_total").increment(n);
                        break;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "relay.prune failed");
                        break;
                    }
                }
            }
        }
    }
}
