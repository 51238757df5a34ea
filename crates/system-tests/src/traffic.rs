//! Traffic beside an operation under test: a client that keeps placing and
//! paying orders through order-command, and a reader that polls the query
//! API for every order it has seen, recording every error and every order
//! whose version went back.
//!
//! For rebuilds and other swaps that must be invisible to users: the test
//! runs the operation while both go on, then asserts the reader saw no
//! error and no regression. [`Traffic::wait_for_commands`] lets a test hold
//! an operation at its riskiest point until commands have really arrived
//! there, instead of hoping they do.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::post;

/// Orders read per round from the newest, and from the older ones.
const WINDOW: usize = 30;

/// A customer and products to place orders with.
#[derive(Debug, Clone)]
pub struct Shop {
    pub command: String,
    pub customer: String,
    pub products: Vec<String>,
}

impl Shop {
    /// Creates a customer and five products through `command` (its base URL).
    pub async fn open(http: &reqwest::Client, command: &str, tag: &str) -> Self {
        let (status, customer) = post(
            http,
            format!("{command}/customers"),
            json!({"name": "Rebuild Traffic", "email": format!("traffic-{tag}@example.com")}),
        )
        .await;
        assert_eq!(status, 201, "{customer}");
        let mut products = Vec::new();
        for i in 0..5 {
            let (status, product) = post(
                http,
                format!("{command}/products"),
                json!({"sku": format!("TRF-{i}"), "name": format!("Traffic {i}"),
                       "unit_price_minor": 250 + i, "currency": "EUR", "stock": 100_000_000}),
            )
            .await;
            assert_eq!(status, 201, "{product}");
            products.push(product["id"].as_str().expect("id").to_owned());
        }
        Self {
            command: command.to_owned(),
            customer: customer["id"].as_str().expect("id").to_owned(),
            products,
        }
    }

    /// Places one order (and pays it when `pay`): its id and last version.
    pub async fn order(&self, http: &reqwest::Client, n: usize, pay: bool) -> (Uuid, i64) {
        let body = json!({"customer_id": self.customer,
            "lines": [{"product_id": self.products[n % self.products.len()], "quantity": 1 + n % 3}],
            "shipping_address": {"line1": format!("{n} Rebuild Rd"), "city": "Leeds", "postal_code": "LS1", "country": "GB"}});
        let (status, placed) = post(http, format!("{}/orders", self.command), body).await;
        assert_eq!(status, 201, "{placed}");
        let id: Uuid = placed["order_id"]
            .as_str()
            .expect("id")
            .parse()
            .expect("uuid");
        if !pay {
            return (id, 1);
        }
        let (status, paid) = post(
            http,
            format!("{}/orders/{id}/pay", self.command),
            json!({"payment_reference": format!("r-{n}")}),
        )
        .await;
        assert_eq!(status, 200, "{paid}");
        (id, 2)
    }
}

/// What the reader saw.
#[derive(Debug, Default)]
pub struct Observed {
    /// Reads that answered anything but 200 (404 for an order not yet
    /// visible excepted), with what they answered.
    pub errors: Vec<String>,
    /// `(endpoint, order, version seen before, version seen after)`.
    pub regressions: Vec<(String, Uuid, i64, i64)>,
    pub reads: u64,
    /// Commands the client had acknowledged when it stopped.
    pub commands: u64,
}

/// The client and the reader, running until [`Traffic::stop`].
#[derive(Debug)]
pub struct Traffic {
    stop: Arc<AtomicBool>,
    commands: Arc<AtomicU64>,
    reads: Arc<AtomicU64>,
    client: JoinHandle<()>,
    reader: JoinHandle<Observed>,
}

impl Traffic {
    /// Starts both: orders placed through `shop` (every other one paid, then
    /// older ones paid later), reads through `query` (its base URL) of every
    /// order in `known` and every order placed since.
    pub fn start(shop: Shop, query: String, known: Vec<Uuid>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let commands = Arc::new(AtomicU64::new(0));
        let reads = Arc::new(AtomicU64::new(0));
        let orders = Arc::new(Mutex::new(known));
        let http = reqwest::Client::new();
        let client = tokio::spawn({
            let (stop, commands, orders, http) =
                (stop.clone(), commands.clone(), orders.clone(), http.clone());
            async move {
                let mut n = 0usize;
                let mut unpaid: Vec<Uuid> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let (id, _) = shop.order(&http, n, n.is_multiple_of(2)).await;
                    commands.fetch_add(1 + u64::from(n.is_multiple_of(2)), Ordering::Relaxed);
                    orders.lock().await.push(id);
                    if n % 2 == 1 {
                        unpaid.push(id);
                    }
                    // Older orders move on too, so reads can go back.
                    if n.is_multiple_of(3)
                        && let Some(old) = unpaid.pop()
                    {
                        let (status, body) = post(
                            &http,
                            format!("{}/orders/{old}/pay", shop.command),
                            json!({}),
                        )
                        .await;
                        assert_eq!(status, 200, "{body}");
                        commands.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        let reader = tokio::spawn({
            let (stop, orders, commands, reads) = (
                stop.clone(),
                orders.clone(),
                commands.clone(),
                reads.clone(),
            );
            async move {
                let mut observed = Observed::default();
                let mut seen: HashMap<(&'static str, Uuid), i64> = HashMap::new();
                let mut older = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    // The newest orders (the ones moving) every round, and
                    // a window sliding over the older ones.
                    let round: Vec<Uuid> = {
                        let all = orders.lock().await;
                        let newest = all.len().saturating_sub(WINDOW);
                        older = if older + WINDOW >= newest {
                            0
                        } else {
                            older + WINDOW
                        };
                        let mut round: Vec<Uuid> = all[newest..].to_vec();
                        round.extend_from_slice(&all[older..(older + WINDOW).min(newest)]);
                        round
                    };
                    for order in round {
                        for endpoint in ["summary", "status"] {
                            let url = match endpoint {
                                "summary" => format!("{query}/orders/{order}"),
                                _ => format!("{query}/orders/{order}/status"),
                            };
                            observed.reads += 1;
                            reads.fetch_add(1, Ordering::Relaxed);
                            let before = seen.get(&(endpoint, order)).copied();
                            let response = match http.get(&url).send().await {
                                Ok(r) => r,
                                Err(e) => {
                                    observed.errors.push(format!("{endpoint} {order}: {e}"));
                                    continue;
                                }
                            };
                            let status = response.status().as_u16();
                            let body: Value = response.json().await.unwrap_or(Value::Null);
                            if status == 404 && before.is_none() {
                                continue;
                            }
                            if status != 200 {
                                observed
                                    .errors
                                    .push(format!("{endpoint} {order}: {status} {body}"));
                                continue;
                            }
                            let Some(version) = body["version"].as_i64() else {
                                observed
                                    .errors
                                    .push(format!("{endpoint} {order}: no version in {body}"));
                                continue;
                            };
                            if let Some(before) = before
                                && version < before
                            {
                                observed.regressions.push((
                                    endpoint.to_owned(),
                                    order,
                                    before,
                                    version,
                                ));
                            }
                            let entry = seen.entry((endpoint, order)).or_insert(version);
                            *entry = (*entry).max(version);
                        }
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                    }
                }
                observed.commands = commands.load(Ordering::Relaxed);
                observed
            }
        });
        Self {
            stop,
            commands,
            reads,
            client,
            reader,
        }
    }

    /// Commands acknowledged so far.
    pub fn commands(&self) -> u64 {
        self.commands.load(Ordering::Relaxed)
    }

    /// Waits until `more` commands beyond `from` have been acknowledged.
    pub async fn wait_for_commands(&self, from: u64, more: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while self.commands() < from + more {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the traffic client acknowledged {} commands in 60 s, wanted {more}",
                self.commands() - from
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the reader has done `more` reads from now on: a full
    /// round over every order it polls and then some, so what an operation
    /// just did is read before the traffic stops.
    pub async fn wait_for_reads(&self, more: u64) {
        let from = self.reads.load(Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while self.reads.load(Ordering::Relaxed) < from + more {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the traffic reader did fewer than {more} reads in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Handles to the command and read counters, for code that must wait
    /// on them outside this struct (a progress hook).
    pub fn counters(&self) -> (Arc<AtomicU64>, Arc<AtomicU64>) {
        (self.commands.clone(), self.reads.clone())
    }

    /// Stops both and returns what the reader saw.
    pub async fn stop(self) -> Observed {
        self.stop.store(true, Ordering::Relaxed);
        self.client.await.expect("traffic client");
        self.reader.await.expect("traffic reader")
    }
}
