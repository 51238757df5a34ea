//! What `orderctl` does to the search index outside the event flow:
//! backfill from the write model, and the reads and repairs of `reconcile`.
//!
//! Every write keeps the order version as the document's external version,
//! so the engine itself refuses anything that would move a document back
//! past a newer projector write.

use anyhow::Context as _;
use elasticsearch::http::request::JsonBody;
use elasticsearch::{BulkParts, SearchParts};
use orderflow_readmodel::OrderSummary;
use serde_json::{Value, json};
use uuid::Uuid;

use super::SearchProjection;

impl SearchProjection {
    /// Indexes each summary unless the index already holds that version or
    /// a newer one, so it can run beside a live projector and be repeated.
    /// Returns how many documents changed.
    pub async fn backfill(&self, summaries: &[OrderSummary]) -> anyhow::Result<u64> {
        let docs: Vec<&OrderSummary> = summaries.iter().collect();
        self.written(&docs, "external").await
    }

    /// Replaces documents of the same version whose content differs (a
    /// repair); a document a projector has moved past that version is left
    /// alone. Returns how many documents were replaced.
    pub async fn overwrite(&self, summaries: &[&OrderSummary]) -> anyhow::Result<u64> {
        self.written(summaries, "external_gte").await
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
    pub async fn ids_after(&self, after: Option<Uuid>, limit: i64) -> anyhow::Result<Vec<Uuid>> {
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

    /// Deletes the documents of `orders`. Returns how many were there.
    pub async fn remove(&self, orders: &[Uuid]) -> anyhow::Result<u64> {
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
}
