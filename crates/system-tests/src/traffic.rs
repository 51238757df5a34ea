//! Traffic beside an operation under test: a client that keeps placing and
//! paying orders through order-command, and a reader that polls the query
//! API for every order it has seen, recording every error and every order
//! whose version went back.
//!
//! With [`Traffic::start_with_search`] the reader also walks the search
//! endpoint's first pages of the shop's orders (the newest, the ones that
//! move) every round: an empty index where orders were found before, an
//! order found before and missing now from the range the walk covered, or
//! an order found at an older version is recorded too.
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

use orderflow_readmodel::OrderSummary;
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
        Self::start_reading(shop, query, known, false)
    }

    /// [`Traffic::start`], the reader also walking `GET /orders/search`.
    pub fn start_with_search(shop: Shop, query: String, known: Vec<Uuid>) -> Self {
        Self::start_reading(shop, query, known, true)
    }

    fn start_reading(shop: Shop, query: String, known: Vec<Uuid>, search: bool) -> Self {
        let customer = shop.customer.clone();
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
                let mut placed: HashMap<Uuid, i128> = HashMap::new();
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
                    if search {
                        let read = search_walk(&http, &query, &customer).await;
                        reads.fetch_add(read.requests, Ordering::Relaxed);
                        observed.reads += read.requests;
                        check_search(&mut observed, &mut seen, &mut placed, read);
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

/// Pages of the newest orders a search walk reads each round (the moving
/// ones; the older ones do not change), so a round stays short however many
/// orders the traffic has placed.
const SEARCH_PAGES: usize = 3;

/// One walk over the first pages of a customer's orders in the search
/// endpoint, newest first.
struct SearchWalk {
    requests: u64,
    /// `(order, version, placed_at in ms)` of every order found, or the failure.
    found: Result<Vec<(Uuid, i64, i128)>, String>,
    /// Whether the walk reached the last page (else it covers the orders
    /// placed at or after the last one found).
    complete: bool,
}

/// Reads the first [`SEARCH_PAGES`] pages of `customer`'s orders from
/// `GET /orders/search`.
async fn search_walk(http: &reqwest::Client, query: &str, customer: &str) -> SearchWalk {
    let mut walk = SearchWalk {
        requests: 0,
        found: Ok(Vec::new()),
        complete: false,
    };
    let mut cursor: Option<String> = None;
    for _ in 0..SEARCH_PAGES {
        let mut url = format!("{query}/orders/search?customer_id={customer}&limit=100");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        walk.requests += 1;
        let answer = match http.get(&url).send().await {
            Ok(r) => r,
            Err(e) => {
                walk.found = Err(format!("search: {e}"));
                return walk;
            }
        };
        let status = answer.status().as_u16();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        if status != 200 {
            walk.found = Err(format!("search: {status} {body}"));
            return walk;
        }
        for item in body["items"].as_array().into_iter().flatten() {
            match serde_json::from_value::<OrderSummary>(item.clone()) {
                Ok(order) => {
                    if let Ok(found) = &mut walk.found {
                        found.push((
                            order.order_id,
                            order.version,
                            // The index sorts by milliseconds, then id.
                            order.placed_at.unix_timestamp_nanos() / 1_000_000,
                        ));
                    }
                }
                Err(e) => {
                    walk.found = Err(format!("search: an unreadable item ({e}): {item}"));
                    return walk;
                }
            }
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => {
                walk.complete = true;
                return walk;
            }
        }
    }
    walk
}

/// Records what a search walk shows against what earlier walks found: an
/// error, an order gone from the range the walk covered (or an empty
/// index), a version gone back. `placed` keeps each found order's
/// `placed_at` (in milliseconds), the sort key that says whether it is in that range.
fn check_search(
    observed: &mut Observed,
    seen: &mut HashMap<(&'static str, Uuid), i64>,
    placed: &mut HashMap<Uuid, i128>,
    walk: SearchWalk,
) {
    let found = match walk.found {
        Ok(found) => found,
        Err(e) => {
            observed.errors.push(e);
            return;
        }
    };
    // The walk covers every order newer than its last one (sort: placed_at
    // then id, descending), all of them when it reached the end.
    let covered_from = match (walk.complete, found.last()) {
        (false, Some((id, _, at))) => Some((*at, *id)),
        _ => None,
    };
    let now: HashMap<Uuid, i64> = found.iter().map(|(id, v, _)| (*id, *v)).collect();
    let gone = placed
        .iter()
        .filter(|(order, at)| covered_from.is_none_or(|from| (**at, **order) > from))
        .filter(|(order, _)| !now.contains_key(order))
        .count();
    if gone > 0 {
        observed.errors.push(format!(
            "search: {gone} orders found before are not found now ({} found)",
            now.len()
        ));
    }
    for (order, version, at) in found {
        placed.insert(order, at);
        let entry = seen.entry(("search", order)).or_insert(version);
        if version < *entry {
            observed
                .regressions
                .push(("search".to_owned(), order, *entry, version));
        }
        *entry = (*entry).max(version);
    }
}
