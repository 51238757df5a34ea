//! Key generations of the status cache: what a rebuild fills beside the
//! live keys, and the one pointer that swaps it in.
//!
//! A rebuild takes a fresh generation number (`<prefix>status:generations`
//! counts them, so a number is never reused and a half-deleted generation
//! can never be mistaken for a new one), names it in
//! `<prefix>status:rebuilding` and fills it. From that moment the live
//! projector's script writes every state it applies into the rebuilding
//! generation as well (forward only), so the copy misses nothing applied
//! before the swap. The swap is one script: the pointer
//! `<prefix>status:generation` moves to the copy and the rebuilding key
//! goes. Readers resolve the pointer inside Redis with every read
//! ([`super::READ`]), so no reader ever sees a half-swapped cache; the old
//! generation is deleted after the swap. A rebuild that dies leaves the
//! rebuilding key and its copy; the next run picks both up.

use uuid::Uuid;

use super::StatusProjection;
use super::maintenance::scan_pattern;
use super::projection::{generation_key, order_key, order_keys, rebuilding_key};

/// One cached entry: status, version, updated_at.
pub type Entry = (String, i64, String);

impl StatusProjection {
    fn rebuild_source_key(&self) -> String {
        format!("{}status:rebuilding-source", self.prefix)
    }

    fn fill_position_key(&self) -> String {
        format!("{}status:rebuilding-after", self.prefix)
    }

    /// The last order a write-model fill of the rebuilding generation wrote.
    pub async fn fill_position(&self) -> anyhow::Result<Option<Uuid>> {
        let mut conn = self.rebuild_connection().await?;
        let after: Option<String> = redis::cmd("GET")
            .arg(self.fill_position_key())
            .query_async(&mut conn)
            .await?;
        Ok(after.and_then(|a| a.parse().ok()))
    }

    /// Records that a write-model fill has written every order up to `after`.
    pub async fn set_fill_position(&self, after: Uuid) -> anyhow::Result<()> {
        let mut conn = self.rebuild_connection().await?;
        let () = redis::cmd("SET")
            .arg(self.fill_position_key())
            .arg(after.to_string())
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn rebuild_connection(&self) -> anyhow::Result<redis::aio::ConnectionManager> {
        self.connection()
            .await
            .map_err(|e| anyhow::anyhow!("connecting to Redis (REDIS_URL): {e}"))
    }

    /// The generation a stopped rebuild left, with its source, if any.
    pub async fn rebuilding(&self) -> anyhow::Result<Option<(u64, String)>> {
        let mut conn = self.rebuild_connection().await?;
        let (generation, source): (Option<u64>, Option<String>) = redis::pipe()
            .get(rebuilding_key(&self.prefix))
            .get(self.rebuild_source_key())
            .query_async(&mut conn)
            .await?;
        Ok(generation.map(|g| (g, source.unwrap_or_default())))
    }

    /// Starts a rebuild from `source` into a new generation, or carries on
    /// the one a stopped rebuild from the same source left:
    /// `(generation, resumed)`.
    pub async fn begin_rebuild(&self, source: &str) -> anyhow::Result<(u64, bool)> {
        if let Some((generation, left_by)) = self.rebuilding().await? {
            anyhow::ensure!(
                left_by == source,
                "a status rebuild from {left_by} stopped before its swap and left generation \
                 {generation}; run it again with that source, or discard it first"
            );
            return Ok((generation, true));
        }
        let live = self.generation().await?;
        let mut conn = self.rebuild_connection().await?;
        let counter = format!("{}status:generations", self.prefix);
        let mut generation: u64 = redis::cmd("INCR")
            .arg(&counter)
            .query_async(&mut conn)
            .await?;
        if generation <= live {
            generation = live + 1;
            let () = redis::cmd("SET")
                .arg(&counter)
                .arg(generation)
                .query_async(&mut conn)
                .await?;
        }
        let () = redis::pipe()
            .set(self.rebuild_source_key(), source)
            .ignore()
            .set(rebuilding_key(&self.prefix), generation)
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok((generation, false))
    }

    /// Gives up a stopped rebuild: its generation is deleted.
    pub async fn discard_rebuild(&self) -> anyhow::Result<()> {
        if let Some((generation, _)) = self.rebuilding().await? {
            let mut conn = self.rebuild_connection().await?;
            let () = redis::pipe()
                .del(rebuilding_key(&self.prefix))
                .ignore()
                .del(self.rebuild_source_key())
                .ignore()
                .del(self.fill_position_key())
                .ignore()
                .query_async(&mut conn)
                .await?;
            self.delete_generation(generation).await?;
        }
        Ok(())
    }

    /// The live entries that `copy` lacks or holds at an older version.
    pub async fn behind(&self, live: u64, copy: u64) -> anyhow::Result<Vec<(Uuid, Entry)>> {
        let mut conn = self.rebuild_connection().await?;
        let head = order_keys(&self.prefix, live);
        let mut behind = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(scan_pattern(&head))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            let ids: Vec<Uuid> = keys
                .iter()
                .filter_map(|k| k.strip_prefix(head.as_str()).and_then(|id| id.parse().ok()))
                .collect();
            if !ids.is_empty() {
                let mut pipe = redis::pipe();
                for id in &ids {
                    pipe.cmd("HMGET")
                        .arg(order_key(&self.prefix, live, *id))
                        .arg("status")
                        .arg("version")
                        .arg("updated_at");
                    pipe.cmd("HGET")
                        .arg(order_key(&self.prefix, copy, *id))
                        .arg("version");
                }
                let values: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
                for (id, pair) in ids.iter().zip(values.chunks(2)) {
                    let (status, version, updated_at): (
                        Option<String>,
                        Option<i64>,
                        Option<String>,
                    ) = redis::from_redis_value(pair[0].clone())?;
                    let copied: Option<i64> = redis::from_redis_value(pair[1].clone())?;
                    if let (Some(status), Some(version)) = (status, version)
                        && copied.is_none_or(|c| c < version)
                    {
                        behind.push((*id, (status, version, updated_at.unwrap_or_default())));
                    }
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        Ok(behind)
    }

    /// Writes `entries` into generation `copy`, each only over an older
    /// version. Returns how many keys changed.
    pub async fn copy_forward(&self, copy: u64, entries: &[(Uuid, Entry)]) -> anyhow::Result<u64> {
        if entries.is_empty() {
            return Ok(0);
        }
        let mut conn = self.rebuild_connection().await?;
        let script = redis::Script::new(include_str!("backfill.lua"));
        let sha: String = script.prepare_invoke().load_async(&mut conn).await?;
        let mut pipe = redis::pipe();
        for (id, (status, version, updated_at)) in entries {
            pipe.cmd("EVALSHA")
                .arg(&sha)
                .arg(1)
                .arg(order_key(&self.prefix, copy, *id))
                .arg(version)
                .arg(status)
                .arg(updated_at);
        }
        let written: Vec<i64> = pipe.query_async(&mut conn).await?;
        Ok(written.into_iter().filter(|w| *w == 1).count() as u64)
    }

    /// Moves the pointer to `copy` and ends the rebuild, atomically; false
    /// if `copy` is no longer the generation being rebuilt.
    pub async fn swap_to(&self, copy: u64) -> anyhow::Result<bool> {
        let mut conn = self.rebuild_connection().await?;
        let swapped: i64 = redis::Script::new(include_str!("swap.lua"))
            .key(generation_key(&self.prefix))
            .key(rebuilding_key(&self.prefix))
            .arg(copy)
            .invoke_async(&mut conn)
            .await?;
        let () = redis::cmd("DEL")
            .arg(self.rebuild_source_key())
            .arg(self.fill_position_key())
            .query_async(&mut conn)
            .await?;
        Ok(swapped == 1)
    }

    /// Deletes every key of `generation`, a thousand at a time. Returns how
    /// many there were.
    pub async fn delete_generation(&self, generation: u64) -> anyhow::Result<u64> {
        let mut conn = self.rebuild_connection().await?;
        let pattern = scan_pattern(&order_keys(&self.prefix, generation));
        let mut deleted = 0;
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}
