//! The status cache as a [`ReadStore`]: what `orderctl` does to it outside
//! the event flow (backfill from the write model, and the reads, walks and
//! repairs of `reconcile`).
//!
//! Each write is a script that checks the stored version first, so it is
//! safe beside a live projector; all of a batch goes in one pipelined round
//! trip. Each works on the live generation (read from the pointer when it
//! starts) or, for a projection pinned to one, on that generation.

use std::collections::HashMap;

use anyhow::Context as _;
use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt as _};
use orderflow_readmodel::OrderSummary;
use redis::aio::ConnectionManager;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::StatusProjection;
use super::projection::{generation_key, order_key, order_keys};
use crate::store::{ReadStore, Stored};

#[async_trait]
impl ReadStore for StatusProjection {
    fn model(&self) -> &'static str {
        "status"
    }

    /// Each order's `{status, version, updated_at}` in the generation this
    /// projection works on; an entry without status or version is absent.
    async fn read(&self, orders: &[Uuid]) -> anyhow::Result<HashMap<Uuid, Stored>> {
        if orders.is_empty() {
            return Ok(HashMap::new());
        }
        let generation = self.generation().await?;
        let mut conn = self.maintenance_connection().await?;
        let mut pipe = redis::pipe();
        for order in orders {
            pipe.cmd("HMGET")
                .arg(order_key(&self.prefix, generation, *order))
                .arg("status")
                .arg("version")
                .arg("updated_at");
        }
        let entries: Vec<(Option<String>, Option<i64>, Option<String>)> =
            pipe.query_async(&mut conn).await?;
        Ok(orders
            .iter()
            .zip(entries)
            .filter_map(|(order, entry)| match entry {
                (Some(status), Some(version), updated_at) => Some((
                    *order,
                    Stored {
                        version,
                        document: json!({
                            "status": status,
                            "version": version,
                            "updated_at": updated_at,
                        }),
                    },
                )),
                _ => None,
            })
            .collect())
    }

    fn ids(&self, page: usize) -> BoxStream<'_, anyhow::Result<Vec<Uuid>>> {
        stream::try_unfold(Some(0), move |cursor| async move {
            let Some(cursor) = cursor else {
                return Ok(None);
            };
            let (next, ids) = self.scan_ids(cursor, page).await?;
            Ok(Some((ids, (next != 0).then_some(next))))
        })
        .boxed()
    }

    async fn backfill(&self, summaries: &[OrderSummary]) -> anyhow::Result<u64> {
        StatusProjection::backfill(self, summaries)
            .await
            .context("writing Redis")
    }

    async fn replace(&self, rows: &[(i64, &OrderSummary)]) -> anyhow::Result<u64> {
        let rows: Vec<(Option<i64>, &OrderSummary)> =
            rows.iter().map(|(seen, s)| (Some(*seen), *s)).collect();
        self.scripted(include_str!("repair.lua"), &rows).await
    }

    async fn remove(&self, orders: &[Uuid]) -> anyhow::Result<u64> {
        if orders.is_empty() {
            return Ok(0);
        }
        let generation = self.generation().await?;
        let mut conn = self.maintenance_connection().await?;
        let keys: Vec<String> = orders
            .iter()
            .map(|o| order_key(&self.prefix, generation, *o))
            .collect();
        let removed: u64 = redis::cmd("DEL").arg(keys).query_async(&mut conn).await?;
        Ok(removed)
    }

    /// The cache keeps an order's status (and when it last changed, which
    /// is not compared: the query API serves only the status and version
    /// from here).
    fn differences(
        &self,
        stored: &Stored,
        want: &OrderSummary,
    ) -> anyhow::Result<Vec<&'static str>> {
        let same = stored.document["status"].as_str() == Some(want.status.as_str());
        Ok(if same { Vec::new() } else { vec!["status"] })
    }
}

impl StatusProjection {
    async fn maintenance_connection(&self) -> anyhow::Result<ConnectionManager> {
        self.connection()
            .await
            .map_err(|e| anyhow::anyhow!("connecting to Redis: {e}"))
    }

    /// The generation this projection works on: its pinned one, or the
    /// live one the pointer names.
    pub async fn generation(&self) -> anyhow::Result<u64> {
        if let Some(pinned) = self.pinned {
            return Ok(pinned);
        }
        let mut conn = self.maintenance_connection().await?;
        let live: Option<u64> = redis::cmd("GET")
            .arg(generation_key(&self.prefix))
            .query_async(&mut conn)
            .await?;
        Ok(live.unwrap_or(0))
    }

    /// Writes each order's status unless the cache already has that version
    /// or a newer one. Returns how many keys changed.
    pub async fn backfill(&self, summaries: &[OrderSummary]) -> anyhow::Result<u64> {
        let rows: Vec<(Option<i64>, &OrderSummary)> = summaries.iter().map(|s| (None, s)).collect();
        self.scripted(include_str!("backfill.lua"), &rows).await
    }

    /// Runs `script` once per order, in one pipeline; its ARGV are the seen
    /// version (when given), then version, status and updated_at.
    async fn scripted(
        &self,
        script: &str,
        rows: &[(Option<i64>, &OrderSummary)],
    ) -> anyhow::Result<u64> {
        if rows.is_empty() {
            return Ok(0);
        }
        let generation = self.generation().await?;
        let mut conn = self.maintenance_connection().await?;
        // Loaded once, so the pipeline sends only its hash per key.
        let sha: String = redis::Script::new(script)
            .prepare_invoke()
            .load_async(&mut conn)
            .await?;
        let mut pipe = redis::pipe();
        for (seen, summary) in rows {
            let call = pipe.cmd("EVALSHA").arg(&sha).arg(1).arg(order_key(
                &self.prefix,
                generation,
                summary.order_id,
            ));
            if let Some(seen) = seen {
                call.arg(seen);
            }
            call.arg(summary.version)
                .arg(&summary.status)
                .arg(summary.updated_at.format(&Rfc3339)?);
        }
        let written: Vec<i64> = pipe.query_async(&mut conn).await?;
        Ok(written.into_iter().filter(|w| *w == 1).count() as u64)
    }

    /// One step of walking the cached order ids: `(next cursor, ids)`, done
    /// when the next cursor is 0. An id may come twice (SCAN's contract).
    pub async fn scan_ids(&self, cursor: u64, count: usize) -> anyhow::Result<(u64, Vec<Uuid>)> {
        let generation = self.generation().await?;
        let mut conn = self.maintenance_connection().await?;
        let head = order_keys(&self.prefix, generation);
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{}*", glob_escape(&head)))
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await?;
        let ids = keys
            .iter()
            .filter_map(|k| {
                k.strip_prefix(head.as_str())
                    .and_then(|id| Uuid::parse_str(id).ok())
            })
            .collect();
        Ok((next, ids))
    }
}

/// `text` matched literally by a SCAN pattern.
pub fn scan_pattern(text: &str) -> String {
    format!("{}*", glob_escape(text))
}

/// `text` matched literally by a SCAN pattern.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
