//! Commit→visible: how long after a command's reply each read model shows
//! the version the command returned, as a reader polling that store sees it.
//!
//! Each store is polled on its own task every [`POLL`], only for the orders
//! it still owes a version, so a slow store never delays the others'
//! figures. The poll interval is the resolution: a figure is at most one
//! interval late.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How often each store is polled.
pub const POLL: Duration = Duration::from_millis(20);

/// The three read models, as the bench names them.
pub const STORES: [&str; 3] = ["summary", "search", "status"];

/// Where to look for each store's copy of an order.
#[derive(Debug, Clone)]
pub struct Stores {
    pub read: sqlx::PgPool,
    pub search_url: String,
    pub alias: String,
    /// Read through the store's own adapter, which knows its key layout.
    pub status: Arc<orderflow_readstore::status::StatusProjection>,
}

/// Per order, the versions a store still owes and when each was answered.
type Owed = Mutex<HashMap<Uuid, Vec<(i64, Instant)>>>;

/// The versions each store still owes, and how long each took once shown.
pub struct Visibility {
    owed: [Owed; 3],
    seen: [Mutex<Histogram<u64>>; 3],
}

impl Visibility {
    pub fn new() -> Self {
        Self {
            owed: Default::default(),
            seen: std::array::from_fn(|_| Mutex::new(orderflow_testkit::bench::histogram())),
        }
    }

    /// A command answered `version` for `order` at `at`.
    pub fn expect(&self, order: Uuid, version: i64, at: Instant) {
        for owed in &self.owed {
            owed.lock()
                .expect("owed")
                .entry(order)
                .or_default()
                .push((version, at));
        }
    }

    /// Versions each store still owes.
    pub fn backlog(&self) -> [usize; 3] {
        std::array::from_fn(|i| {
            self.owed[i]
                .lock()
                .expect("owed")
                .values()
                .map(Vec::len)
                .sum()
        })
    }

    /// Takes the latencies recorded so far (microseconds) and starts afresh.
    pub fn take(&self) -> [Histogram<u64>; 3] {
        std::array::from_fn(|i| {
            std::mem::replace(
                &mut *self.seen[i].lock().expect("seen"),
                orderflow_testkit::bench::histogram(),
            )
        })
    }

    fn owed_orders(&self, store: usize) -> Vec<Uuid> {
        self.owed[store]
            .lock()
            .expect("owed")
            .keys()
            .copied()
            .collect()
    }

    fn shown(&self, store: usize, order: Uuid, version: i64, now: Instant) {
        let mut owed = self.owed[store].lock().expect("owed");
        let Some(waiting) = owed.get_mut(&order) else {
            return;
        };
        let mut seen = self.seen[store].lock().expect("seen");
        waiting.retain(|(wanted, at)| {
            if *wanted <= version {
                seen.saturating_record((now - *at).as_micros() as u64);
                false
            } else {
                true
            }
        });
        if waiting.is_empty() {
            owed.remove(&order);
        }
    }
}

/// Polls all three stores until `token` is cancelled.
pub fn spawn_pollers(
    visibility: Arc<Visibility>,
    stores: Stores,
    token: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..STORES.len())
        .map(|store| {
            let (visibility, stores, token) = (visibility.clone(), stores.clone(), token.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                while !token.is_cancelled() {
                    let ids = visibility.owed_orders(store);
                    if !ids.is_empty() {
                        let now = Instant::now();
                        let versions = match store {
                            0 => summary_versions(&stores, &ids).await,
                            1 => search_versions(&http, &stores, &ids).await,
                            _ => status_versions(&stores, &ids).await,
                        };
                        for (order, version) in versions {
                            visibility.shown(store, order, version, now);
                        }
                    }
                    tokio::time::sleep(POLL).await;
                }
            })
        })
        .collect()
}

async fn summary_versions(stores: &Stores, ids: &[Uuid]) -> Vec<(Uuid, i64)> {
    sqlx::query_as("SELECT order_id, version FROM order_summary WHERE order_id = ANY($1)")
        .bind(ids)
        .fetch_all(&stores.read)
        .await
        .unwrap_or_default()
}

async fn search_versions(
    http: &reqwest::Client,
    stores: &Stores,
    ids: &[Uuid],
) -> Vec<(Uuid, i64)> {
    let body = json!({"size": ids.len(), "_source": false, "version": true, "query": {"ids": {"values": ids}}});
    let Ok(response) = http
        .post(format!("{}/{}/_search", stores.search_url, stores.alias))
        .json(&body)
        .send()
        .await
    else {
        return Vec::new();
    };
    let hits: Value = response.json().await.unwrap_or_default();
    hits["hits"]["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| {
            let id = Uuid::parse_str(h["_id"].as_str()?).ok()?;
            Some((id, h["_version"].as_i64()?))
        })
        .collect()
}

async fn status_versions(stores: &Stores, ids: &[Uuid]) -> Vec<(Uuid, i64)> {
    use orderflow_readstore::ReadStore as _;
    stores
        .status
        .read(ids)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|(id, stored)| (id, stored.version))
        .collect()
}
