//! The open-loop generator: operations arrive at fixed intended times,
//! whatever the system does, and each one's latency is measured from the
//! time it was meant to be sent. A closed loop (send, wait, send) slows down
//! with the system and hides its queueing; this one does not.
//!
//! The mix follows orders through their life: placements feed payments
//! and cancellations, payments feed shipments, shipments deliveries; reads
//! ask the query API for the version a command just returned
//! (`min_version`), as a client reading its own write does.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::visibility::Visibility;

/// The operations, with their share of arrivals in percent.
pub const MIX: [(&str, u32); 6] = [
    ("place", 35),
    ("pay", 20),
    ("ship", 15),
    ("deliver", 10),
    ("cancel", 5),
    ("read", 15),
];

/// Where to send, and what to send it about.
pub struct Target {
    pub http: reqwest::Client,
    pub command: String,
    pub query: String,
    pub customer: String,
    /// The catalogue; each order takes three distinct products, so orders
    /// contend for stock rows as a real catalogue's do, not all for one.
    pub products: Vec<String>,
}

/// Orders waiting for their next step, and replies to read back.
#[derive(Default)]
struct Orders {
    placed: VecDeque<Uuid>,
    paid: VecDeque<Uuid>,
    shipped: VecDeque<Uuid>,
    replies: VecDeque<(Uuid, i64)>,
}

/// One finished operation: its name, the second of the phase it was meant
/// to be sent in, its latency and outcome.
type Finished = (&'static str, usize, Duration, Result<(), String>);

/// What one phase of load measured.
pub struct Phase {
    pub rate: u64,
    pub secs: u64,
    /// Per operation: latency from intended send time, in microseconds.
    pub latency: HashMap<&'static str, Histogram<u64>>,
    /// All commands together (not reads).
    pub commands: Histogram<u64>,
    /// Answers other than 2xx (and transport errors), by operation and status.
    pub errors: HashMap<String, u64>,
    /// Commands acknowledged.
    pub acknowledged: u64,
    /// How far behind its schedule the generator itself fell, worst case.
    pub worst_start_lag: Duration,
    /// Per second of intended send time: the commands' and the reads'
    /// latencies sent in it (for the percentiles-over-time plot).
    pub by_second: Vec<(Histogram<u64>, Histogram<u64>)>,
}

/// The generator's state across phases (orders carry over).
pub struct Generator {
    target: Arc<Target>,
    orders: Arc<Mutex<Orders>>,
    visibility: Arc<Visibility>,
    rng: StdRng,
}

impl Generator {
    pub fn new(target: Target, visibility: Arc<Visibility>, seed: u64) -> Self {
        Self {
            target: Arc::new(target),
            orders: Arc::default(),
            visibility,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Offers `rate` operations a second for `secs` seconds, then waits for
    /// every one still in flight.
    pub async fn run(&mut self, rate: u64, secs: u64) -> Phase {
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let total = rate * secs;
        let results: Arc<Mutex<Vec<Finished>>> =
            Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
        let start = tokio::time::Instant::now();
        let mut worst_start_lag = Duration::ZERO;
        let mut in_flight = Vec::with_capacity(total as usize);
        for i in 0..total {
            let intended = start + interval * i as u32;
            tokio::time::sleep_until(intended).await;
            worst_start_lag = worst_start_lag.max(intended.elapsed());
            let op = self.choose();
            let (target, orders, visibility, results) = (
                self.target.clone(),
                self.orders.clone(),
                self.visibility.clone(),
                results.clone(),
            );
            let second = (i / rate) as usize;
            let intended = intended.into_std();
            in_flight.push(tokio::spawn(async move {
                let outcome = perform(op, &target, &orders, &visibility).await;
                let latency = intended.elapsed();
                results
                    .lock()
                    .expect("results")
                    .push((op.name(), second, latency, outcome));
            }));
        }
        futures::future::join_all(in_flight).await;
        let mut latency: HashMap<&'static str, Histogram<u64>> = HashMap::new();
        let mut commands = orderflow_testkit::bench::histogram();
        let mut errors = HashMap::new();
        let mut acknowledged = 0;
        let mut by_second: Vec<(Histogram<u64>, Histogram<u64>)> = (0..secs)
            .map(|_| {
                (
                    orderflow_testkit::bench::histogram(),
                    orderflow_testkit::bench::histogram(),
                )
            })
            .collect();
        for (op, second, took, outcome) in results.lock().expect("results").drain(..) {
            let micros = took.as_micros() as u64;
            latency
                .entry(op)
                .or_insert_with(orderflow_testkit::bench::histogram)
                .saturating_record(micros);
            if let Some((commands, reads)) = by_second.get_mut(second) {
                if op == "read" {
                    reads.saturating_record(micros);
                } else {
                    commands.saturating_record(micros);
                }
            }
            match outcome {
                Ok(()) if op != "read" => {
                    acknowledged += 1;
                    commands.saturating_record(micros);
                }
                Ok(()) => {}
                Err(why) => *errors.entry(format!("{op}: {why}")).or_default() += 1,
            }
        }
        Phase {
            rate,
            secs,
            latency,
            commands,
            errors,
            acknowledged,
            worst_start_lag,
            by_second,
        }
    }

    /// Picks the next operation by the mix; one whose orders are not there
    /// yet (nothing paid to ship) becomes a placement.
    fn choose(&mut self) -> Op {
        let mut roll = self.rng.random_range(0..100);
        let name = MIX
            .iter()
            .find(|(_, share)| {
                if roll < *share {
                    true
                } else {
                    roll -= share;
                    false
                }
            })
            .map_or("place", |(name, _)| *name);
        let mut orders = self.orders.lock().expect("orders");
        let pick = match name {
            "pay" => orders.placed.pop_front().map(Op::Pay),
            "cancel" => orders.placed.pop_front().map(Op::Cancel),
            "ship" => orders.paid.pop_front().map(Op::Ship),
            "deliver" => orders.shipped.pop_front().map(Op::Deliver),
            "read" => {
                let n = orders.replies.len();
                (n > 0)
                    .then(|| orders.replies[self.rng.random_range(0..n)])
                    .map(|(id, v)| Op::Read(id, v))
            }
            _ => None,
        };
        drop(orders);
        pick.unwrap_or_else(|| {
            let n = self.target.products.len();
            let first = self.rng.random_range(0..n);
            Op::Place([first, (first + 1) % n, (first + 2) % n])
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    /// Indices into the catalogue.
    Place([usize; 3]),
    Pay(Uuid),
    Ship(Uuid),
    Deliver(Uuid),
    Cancel(Uuid),
    Read(Uuid, i64),
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Place(_) => "place",
            Op::Pay(_) => "pay",
            Op::Ship(_) => "ship",
            Op::Deliver(_) => "deliver",
            Op::Cancel(_) => "cancel",
            Op::Read(..) => "read",
        }
    }
}

/// Sends one operation; on a command's success, records what the read
/// models now owe and queues the order's next step.
async fn perform(
    op: Op,
    target: &Target,
    orders: &Mutex<Orders>,
    visibility: &Visibility,
) -> Result<(), String> {
    let c = &target.command;
    let (url, body) = match op {
        Op::Place(products) => (
            format!("{c}/orders"),
            json!({"customer_id": target.customer,
                   "lines": products.map(|i| json!({"product_id": target.products[i], "quantity": 1})),
                   "shipping_address": {"line1": "1 Bench Rd", "city": "Hull", "postal_code": "HU1", "country": "GB"}}),
        ),
        Op::Pay(id) => (
            format!("{c}/orders/{id}/pay"),
            json!({"payment_reference": "bench"}),
        ),
        Op::Ship(id) => (
            format!("{c}/orders/{id}/ship"),
            json!({"carrier": "Bench", "tracking_number": "B1"}),
        ),
        Op::Deliver(id) => (format!("{c}/orders/{id}/deliver"), json!({})),
        Op::Cancel(id) => (
            format!("{c}/orders/{id}/cancel"),
            json!({"reason": "bench"}),
        ),
        Op::Read(id, version) => {
            let response = target
                .http
                .get(format!(
                    "{}/orders/{id}?min_version={version}",
                    target.query
                ))
                .send()
                .await
                .map_err(|e| format!("transport {}", e.without_url()))?;
            return match response.status().as_u16() {
                200 => Ok(()),
                other => Err(other.to_string()),
            };
        }
    };
    let response = target
        .http
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("transport {}", e.without_url()))?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(status.to_string());
    }
    let at = Instant::now();
    let reply: Value = response.json().await.map_err(|e| format!("reply {e}"))?;
    let id = reply["order_id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or("reply without order_id")?;
    let version = reply["version"].as_i64().ok_or("reply without version")?;
    visibility.expect(id, version, at);
    let mut orders = orders.lock().expect("orders");
    match op {
        Op::Place(_) => orders.placed.push_back(id),
        Op::Pay(_) => orders.paid.push_back(id),
        Op::Ship(_) => orders.shipped.push_back(id),
        _ => {}
    }
    orders.replies.push_back((id, version));
    if orders.replies.len() > 10_000 {
        orders.replies.pop_front();
    }
    Ok(())
}
