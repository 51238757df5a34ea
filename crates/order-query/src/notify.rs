//! Change notifications the query API waits on instead of polling.
//!
//! One Postgres listener (the summary projector's `NOTIFY` after each
//! commit) and one Redis subscriber (the status projector's change channel)
//! per process fan out to every waiting request and SSE stream through
//! broadcast channels. Waiters subscribe before they read, so a change that
//! lands between the read and the wait is never missed.

use std::time::Duration;

use futures::StreamExt as _;
use orderflow_readmodel::SUMMARY_CHANNEL;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A status change as the status projector publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusChange {
    pub order_id: Uuid,
    pub status: String,
    pub version: i64,
    pub updated_at: String,
}

/// The fan-out points.
#[derive(Debug, Clone)]
pub struct Notifier {
    pub summary: broadcast::Sender<(Uuid, i64)>,
    pub status: broadcast::Sender<StatusChange>,
}

impl Default for Notifier {
    fn default() -> Self {
        Self {
            summary: broadcast::channel(4096).0,
            status: broadcast::channel(4096).0,
        }
    }
}

/// Forwards `order_summary_changed` notifications until cancelled.
pub async fn listen_summary(
    pool: PgPool,
    tx: broadcast::Sender<(Uuid, i64)>,
    token: CancellationToken,
) -> anyhow::Result<()> {
    let mut listener = loop {
        match connect(&pool).await {
            Ok(l) => break l,
            Err(err) => {
                tracing::warn!(error = %err, "order_query.notify summary listener cannot connect; retrying");
                if sleep_or_cancel(Duration::from_secs(1), &token).await {
                    return Ok(());
                }
            }
        }
    };
    loop {
        tokio::select! {
            () = token.cancelled() => return Ok(()),
            received = listener.recv() => match received {
                Ok(note) => {
                    for pair in note.payload().split(',') {
                        if let Some((id, version)) = pair.split_once(':')
                            && let (Ok(id), Ok(version)) = (Uuid::parse_str(id), version.parse()) {
                                let _ = tx.send((id, version));
                            }
                    }
                }
                Err(err) => {
                    // The listener reconnects on the next call.
                    tracing::warn!(error = %err, "order_query.notify summary listener error");
                    if sleep_or_cancel(Duration::from_millis(500), &token).await {
                        return Ok(());
                    }
                }
            }
        }
    }
}

async fn connect(pool: &PgPool) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(SUMMARY_CHANNEL).await?;
    Ok(listener)
}

/// Forwards the status change channel until cancelled, resubscribing after errors.
pub async fn listen_status(
    client: redis::Client,
    channel: String,
    tx: broadcast::Sender<StatusChange>,
    token: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                if let Err(err) = pubsub.subscribe(&channel).await {
                    tracing::warn!(error = %err, "order_query.notify status subscribe failed");
                } else {
                    let mut messages = pubsub.on_message();
                    loop {
                        tokio::select! {
                            () = token.cancelled() => return Ok(()),
                            message = messages.next() => match message {
                                Some(m) => {
                                    let payload: String = m.get_payload().unwrap_or_default();
                                    if let Ok(change) = serde_json::from_str::<StatusChange>(&payload) {
                                        let _ = tx.send(change);
                                    }
                                }
                                None => break,
                            }
                        }
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "order_query.notify redis unavailable; retrying")
            }
        }
        if sleep_or_cancel(Duration::from_secs(1), &token).await {
            return Ok(());
        }
    }
}

async fn sleep_or_cancel(d: Duration, token: &CancellationToken) -> bool {
    tokio::select! {
        () = token.cancelled() => true,
        () = tokio::time::sleep(d) => false,
    }
}
