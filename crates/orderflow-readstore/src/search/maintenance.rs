//! The search index as a [`ReadStore`]: what `orderctl` does to it outside
//! the event flow (backfill from the write model, and the reads, walks and
//! repairs of `reconcile`).
//!
//! Every write keeps the order version as the document's external version,
//! so the engine itself refuses anything that would move a document back
//! past a newer projector write.

use std::collections::HashMap;

use anyhow::Context as _;
use async_trait::async_trait;
use elasticsearch::http::request::JsonBody;
use elasticsearch::indices::IndicesRefreshParts;
use elasticsearch::{BulkParts, MgetParts, SearchParts};
use futures::stream::{self, BoxStream, StreamExt as _};
use orderflow_readmodel::OrderSummary;
use serde_json::{Value, json};
use uuid::Uuid;

use super::SearchProjection;
use crate::store::{ReadStore, Stored, as_summary, differing_fields};

#[async_trait]
impl ReadStore for SearchProjection {
    fn model(&self) -> &'static str {
        "search"
    }

    /// Documents indexed a moment ago become searchable, so a walk sees them.
    async fn refresh(&self) -> anyhow::Result<()> {
        let response = self
            .client
            .indices()
            .refresh(IndicesRefreshParts::Index(&[&self.alias]))
            .send()
            .await;
        self.answer("refreshing", response).await?;
        Ok(())
    }

    /// Each document's source, with the engine's external version: the one
    /// it compares writes with (the projector keeps it equal to the
    /// document's `version`).
    async fn read(&self, orders: &[Uuid]) -> anyhow::Result<HashMap<Uuid, Stored>> {
        let ids: Vec<String> = orders.iter().map(Uuid::to_string).collect();
        let response = self
            .client
            .mget(MgetParts::Index(&self.alias))
            .body(json!({"ids": ids}))
            .send()
            .await;
        let body = self.answer("reading", response).await?;
        let mut stored = HashMap::new();
        for doc in body["docs"].as_array().into_iter().flatten() {
            if doc["found"] != json!(true) {
                continue;
            }
            let id = doc["_id"]
                .as_str()
                .and_then(|id| Uuid::parse_str(id).ok())
                .with_context(|| format!("document id {} is not an order id", doc["_id"]))?;
            let document = doc["_source"].clone();
            let version = doc["_version"]
                .as_i64()
                .or_else(|| document["version"].as_i64())
                .unwrap_or(0);
            stored.insert(id, Stored { version, document });
        }
        Ok(stored)
    }

    fn ids(&self, page: usize) -> BoxStream<'_, anyhow::Result<Vec<Uuid>>> {
        let limit = i64::try_from(page).unwrap_or(i64::MAX);
        stream::try_unfold(Some(None), move |after| async move {
            let Some(after) = after else {
                return Ok(None);
            };
            let ids = self.ids_after(after, limit).await?;
            let next = ids.last().copied();
            Ok(next.map(|last| (ids, Some(Some(last)))))
        })
        .boxed()
    }

    async fn backfill(&self, summaries: &[OrderSummary]) -> anyhow::Result<u64> {
        SearchProjection::backfill(self, summaries).await
    }

    /// Only a document of the seen version equal to the write model's is
    /// replaced (`external_gte`): the engine will not move a document below
    /// its external version (its guard against stale writes), so one that
    /// is ahead of the write model is left for a rebuild of the index.
    async fn replace(&self, rows: &[(i64, &OrderSummary)]) -> anyhow::Result<u64> {
        let same_version: Vec<&OrderSummary> = rows
            .iter()
            .filter(|(seen, want)| *seen == want.version)
            .map(|(_, want)| *want)
            .collect();
        if same_version.len() < rows.len() {
            tracing::warn!(
                documents = rows.len() - same_version.len(),
                "orderctl.reconcile search documents ahead of the write model cannot be \
                 moved back in place; rebuild the index"
            );
        }
        self.written(&same_version, "external_gte").await
    }

    async fn remove(&self, orders: &[Uuid]) -> anyhow::Result<u64> {
        if orders.is_empty() {
            return Ok(0);
        }
        let body: Vec<JsonBody<Value>> = orders
            .iter()
            .map(|id| json!({"delete": {"_id": id}}).into())
            .collect();
        let response = self
            .client
            .bulk(BulkParts::Index(&self.alias))
            .body(body)
            .send()
            .await;
        let body = self.answer("deleting from", response).await?;
        let mut removed = 0;
        for item in body["items"].as_array().into_iter().flatten() {
            match item["delete"]["status"].as_u64() {
                Some(200) => removed += 1,
                Some(404) => {}
                other => anyhow::bail!("deleting {}: {other:?} {}", item["delete"]["_id"], item),
            }
        }
        Ok(removed)
    }

    /// The document holds the whole summary (plus fields derived from it
    /// for search): every summary field is compared, and the document's
    /// `version` must be the engine's.
    fn differences(
        &self,
        stored: &Stored,
        want: &OrderSummary,
    ) -> anyhow::Result<Vec<&'static str>> {
        let document = as_summary(stored)?;
        let mut fields = differing_fields(&document, want);
        if document.version != stored.version && !fields.contains(&"version") {
            fields.push("version");
        }
        Ok(fields)
    }
}

impl SearchProjection {
    /// Indexes each summary unless the index already holds that version or
    /// a newer one, so it can run beside a live projector and be repeated.
    /// Returns how many documents changed.
    pub async fn backfill(&self, summaries: &[OrderSummary]) -> anyhow::Result<u64> {
        let docs: Vec<&OrderSummary> = summaries.iter().collect();
        self.written(&docs, "external").await
    }

    async fn written(&self, docs: &[&OrderSummary], version_type: &str) -> anyhow::Result<u64> {
        if docs.is_empty() {
            return Ok(0);
        }
        let refused = self
            .write_versioned(docs, version_type)
            .await
            .map_err(|e| anyhow::anyhow!("indexing into {}: {e}", self.alias))?;
        Ok((docs.len() - refused.len()) as u64)
    }

    /// Up to `limit` indexed order ids after `after` (from the start when
    /// `None`), in id order.
    async fn ids_after(&self, after: Option<Uuid>, limit: i64) -> anyhow::Result<Vec<Uuid>> {
        let mut body = json!({
            // The engine answers at most 10,000 hits per request.
            "size": limit.min(10_000),
            "_source": false,
            "sort": [{"order_id": "asc"}],
            "query": {"match_all": {}}
        });
        if let Some(after) = after {
            body["search_after"] = json!([after]);
        }
        let response = self
            .client
            .search(SearchParts::Index(&[&self.alias]))
            .body(body)
            .send()
            .await;
        let body = self.answer("listing", response).await?;
        body["hits"]["hits"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|hit| {
                hit["_id"]
                    .as_str()
                    .and_then(|id| Uuid::parse_str(id).ok())
                    .with_context(|| format!("document id {} is not an order id", hit["_id"]))
            })
            .collect()
    }

    /// The JSON body of a successful answer; an error naming `what` and the
    /// index otherwise.
    async fn answer(
        &self,
        what: &str,
        response: Result<elasticsearch::http::response::Response, elasticsearch::Error>,
    ) -> anyhow::Result<Value> {
        let response = response?;
        let status = response.status_code();
        let body: Value = response.json().await?;
        anyhow::ensure!(
            status.is_success(),
            "{what} {}: {status} {body}",
            self.alias
        );
        Ok(body)
    }
}
