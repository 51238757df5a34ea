//! The search projection: read the batch's documents, fold the events in,
//! write them back in one `_bulk` with the order version as external version.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use elasticsearch::http::request::JsonBody;
use elasticsearch::{BulkParts, Elasticsearch, MgetParts};
use orderflow_projector::{ApplyError, Event, Inbox, Outcome, Projection, fold, timing};
use orderflow_readmodel::OrderSummary;
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

/// Writes the orders search index.
#[derive(Debug, Clone)]
pub struct SearchProjection {
    pub client: Elasticsearch,
    pub alias: String,
}

/// The document: the summary plus fields shaped for search.
#[derive(Debug, Serialize)]
pub struct OrderDocument<'a> {
    #[serde(flatten)]
    pub summary: &'a OrderSummary,
    pub product_names: Vec<String>,
    pub skus: Vec<String>,
}

fn transient(err: impl std::fmt::Display) -> ApplyError {
    ApplyError::Transient(err.to_string())
}

/// A whole-request failure: 429 and 5xx are worth retrying; any other 4xx
/// (a request the engine will never accept) is refused, so the event that
/// causes it ends up dead-lettered instead of stalling the partition.
fn request_failed(what: &str, status: elasticsearch::http::StatusCode, body: &Value) -> ApplyError {
    let message = format!("{what}: {status} {}", body["error"]["type"]);
    if status.as_u16() == 429 || status.is_server_error() {
        ApplyError::Transient(message)
    } else {
        ApplyError::Refused(message)
    }
}

impl SearchProjection {
    /// The stored documents of `orders`, read back as summaries (absent ones
    /// are missing from the map).
    pub async fn load(&self, orders: &[Uuid]) -> Result<HashMap<Uuid, OrderSummary>, ApplyError> {
        Ok(self
            .load_versioned(orders)
            .await?
            .into_iter()
            .map(|(id, (summary, _))| (id, summary))
            .collect())
    }

    /// [`Self::load`] with each document's external version, the one the
    /// engine compares writes with (the projector keeps it equal to the
    /// summary's `version`).
    pub async fn load_versioned(
        &self,
        orders: &[Uuid],
    ) -> Result<HashMap<Uuid, (OrderSummary, i64)>, ApplyError> {
        let ids: Vec<String> = orders.iter().map(Uuid::to_string).collect();
        let response = self
            .client
            .mget(MgetParts::Index(&self.alias))
            .body(json!({"ids": ids}))
            .send()
            .await
            .map_err(transient)?;
        let status = response.status_code();
        let body: Value = response.json().await.map_err(transient)?;
        if !status.is_success() {
            return Err(request_failed("mget", status, &body));
        }
        let mut current = HashMap::new();
        for doc in body["docs"].as_array().into_iter().flatten() {
            if doc["found"] == json!(true) {
                let summary: OrderSummary = serde_json::from_value(doc["_source"].clone())
                    .map_err(|e| {
                        ApplyError::Refused(format!(
                            "stored document {} unreadable: {e}",
                            doc["_id"]
                        ))
                    })?;
                let version = doc["_version"].as_i64().unwrap_or(summary.version);
                current.insert(summary.order_id, (summary, version));
            }
        }
        Ok(current)
    }

    /// Indexes `docs` in one `_bulk`, each with its order version as
    /// external version, and returns the orders whose stored document was
    /// already at that version or newer (the engine refused them with 409).
    pub async fn write(&self, docs: &[&OrderSummary]) -> Result<HashSet<Uuid>, ApplyError> {
        self.write_versioned(docs, "external").await
    }

    /// [`Self::write`] with another external version type: `external_gte`
    /// also replaces a document of the same version (a repair).
    pub(crate) async fn write_versioned(
        &self,
        docs: &[&OrderSummary],
        version_type: &str,
    ) -> Result<HashSet<Uuid>, ApplyError> {
        let mut body: Vec<JsonBody<Value>> = Vec::with_capacity(docs.len() * 2);
        for summary in docs {
            body.push(json!({"index": {"_id": summary.order_id, "version": summary.version, "version_type": version_type}}).into());
            let doc = OrderDocument {
                summary,
                product_names: summary.product_names(),
                skus: summary.skus(),
            };
            body.push(
                serde_json::to_value(doc)
                    .map_err(|e| ApplyError::Refused(e.to_string()))?
                    .into(),
            );
        }
        let response = self
            .client
            .bulk(BulkParts::Index(&self.alias))
            .body(body)
            .send()
            .await
            .map_err(transient)?;
        let status = response.status_code();
        let result: Value = response.json().await.map_err(transient)?;
        if !status.is_success() {
            return Err(request_failed("bulk", status, &result));
        }
        let mut stale = HashSet::new();
        for item in result["items"].as_array().into_iter().flatten() {
            let item = &item["index"];
            let code = item["status"].as_u64().unwrap_or(0);
            let id = item["_id"].as_str().and_then(|s| Uuid::parse_str(s).ok());
            match code {
                200..=299 => {}
                // A newer version is already there: what we applied is a duplicate.
                409 => {
                    if let Some(id) = id {
                        stale.insert(id);
                    }
                }
                429 | 500..=599 => {
                    return Err(transient(format!("bulk item {code}: {}", item["error"])));
                }
                _ => {
                    return Err(ApplyError::Refused(format!(
                        "bulk item {code}: {}",
                        item["error"]
                    )));
                }
            }
        }
        Ok(stale)
    }
}

impl Projection for SearchProjection {
    fn name(&self) -> &'static str {
        super::NAME
    }

    async fn apply(&self, events: &[Event], inbox: &Inbox) -> Result<Vec<Outcome>, ApplyError> {
        let name = self.name();
        let write = async {
            let started = Instant::now();
            let orders = fold::orders(events);
            let mut current = self.load(&orders).await?;
            let started = timing::stage(name, "store_read", started);
            let (mut outcomes, changed) = fold::fold_summaries(&mut current, events);
            if !changed.is_empty() {
                let docs: Vec<&OrderSummary> = changed.iter().map(|id| &current[id]).collect();
                let stale = self.write(&docs).await?;
                for (event, outcome) in events.iter().zip(outcomes.iter_mut()) {
                    if *outcome == Outcome::Applied && stale.contains(&event.order_id()) {
                        *outcome = Outcome::Duplicate;
                    }
                }
            }
            timing::stage(name, "store_write", started);
            Ok(outcomes)
        };
        // The inbox's insert runs beside the read and write, and commits
        // only once the documents are written.
        inbox.record_while(events, write, transient).await
    }
}
