//! The whole pipeline as real processes: order-command, outbox-relay and
//! the three projectors. 2,000 commands over 200 orders (some refused, as
//! real clients' would be); once drained, every read model equals the
//! write model, field by field.

#![allow(clippy::print_stdout)] // figures are the output

use std::collections::HashMap;
use std::time::Duration;

use elasticsearch::SearchParts;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use futures::future::join_all;
use orderflow_readmodel::OrderSummary;
use orderflow_testkit::{eventually, redis_url, search_url};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use redis::AsyncCommands as _;
use serde_json::{Value, json};
use system_tests::{Pipeline, post, text};
use uuid::Uuid;

const ORDERS: usize = 200;
const COMMANDS_PER_ORDER: usize = 10;
const WORKERS: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_model_matches_the_write_model_after_2000_commands() {
    let pipeline = Pipeline::fresh("e2e").await;
    let (write, read, topic, alias, prefix) = (
        &pipeline.write,
        &pipeline.read,
        &pipeline.topic,
        &pipeline.alias,
        &pipeline.prefix,
    );
    let command = pipeline.start("order-command", &[]).await;
    // The relay creates the topic before the projectors subscribe to it.
    let relay = pipeline.start("outbox-relay", &[]).await;
    let mut projectors = Vec::new();
    for name in ["summary-projector", "search-projector", "status-projector"] {
        projectors.push(pipeline.start(name, &[]).await);
    }

    let http = reqwest::Client::new();
    let base = command.base.clone();
    let mut customers = Vec::new();
    for i in 0..20 {
        let (status, body) = post(
            &http,
            format!("{base}/customers"),
            json!({"name": format!("Customer {i}"), "email": format!("c{i}-{topic}@example.com")}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        customers.push(body["id"].as_str().expect("id").to_owned());
    }
    let mut products = Vec::new();
    for i in 0..30 {
        let (status, body) = post(&http, format!("{base}/products"), json!({"sku": format!("E2E-{i}"), "name": format!("Product number {i}"), "unit_price_minor": 100 + i * 7, "currency": "EUR", "stock": 1_000_000})).await;
        assert_eq!(status, 201, "{body}");
        products.push(body["id"].as_str().expect("id").to_owned());
    }

    // Each worker drives its own orders: place, then random lifecycle
    // commands, many of them illegal in the state they hit (refused, 409).
    let results = join_all((0..WORKERS).map(|w| {
        let (http, base, customers, products) = (http.clone(), base.clone(), customers.clone(), products.clone());
        async move {
            let mut rng = StdRng::seed_from_u64(0x9e37_79b9 + w as u64);
            let mut counts: HashMap<u16, usize> = HashMap::new();
            let mut orders = Vec::new();
            for n in (w..ORDERS).step_by(WORKERS) {
                let lines: Vec<Value> = (0..(1 + rng.random_range(0..4u64)))
                    .map(|k| json!({"product_id": products[(n * 3 + k as usize) % products.len()], "quantity": 1 + rng.random_range(0..5u64)}))
                    .collect();
                let body = json!({"customer_id": customers[n % customers.len()], "lines": lines,
                    "shipping_address": {"line1": format!("{n} Main St"), "city": "York", "postal_code": "YO1", "country": "GB"}});
                let (status, placed) = post(&http, format!("{base}/orders"), body).await;
                assert_eq!(status, 201, "{placed}");
                *counts.entry(status).or_default() += 1;
                let order = placed["order_id"].as_str().expect("order id").to_owned();
                for _ in 1..COMMANDS_PER_ORDER {
                    let (path, body) = match rng.random_range(0..10u64) {
                        0..=2 => ("pay", json!({"payment_reference": format!("p-{n}")})),
                        3..=5 => ("ship", json!({"carrier": "UPS", "tracking_number": format!("1Z{n:06}")})),
                        6..=8 => ("deliver", json!({})),
                        _ => ("cancel", json!({"reason": "changed plans"})),
                    };
                    let (status, reply) = post(&http, format!("{base}/orders/{order}/{path}"), body).await;
                    assert!(status == 200 || status == 409, "{path}: {status} {reply}");
                    *counts.entry(status).or_default() += 1;
                }
                orders.push(Uuid::parse_str(&order).expect("uuid"));
            }
            (counts, orders)
        }
    }))
    .await;
    let mut orders = Vec::new();
    let mut totals: HashMap<u16, usize> = HashMap::new();
    for (counts, mine) in results {
        orders.extend(mine);
        for (k, v) in counts {
            *totals.entry(k).or_default() += v;
        }
    }
    let commands: usize = totals.values().sum();
    assert_eq!(commands, ORDERS * COMMANDS_PER_ORDER);
    println!("e2e: {commands} commands: {totals:?}");

    // The reference: the write model read back as summaries.
    let expected = orderflow_writemodel::readback::summaries(&write.pool, None)
        .await
        .expect("write model");
    assert_eq!(expected.len(), ORDERS);
    let versions: HashMap<Uuid, i64> = expected.iter().map(|s| (s.order_id, s.version)).collect();
    let events: i64 = versions.values().sum();
    println!("e2e: {events} events to project");

    // Summary table.
    let summaries = eventually(
        "order_summary to converge",
        Duration::from_secs(180),
        || async {
            let rows: Vec<sqlx::types::Json<OrderSummary>> =
                sqlx::query_scalar("SELECT to_jsonb(s) FROM order_summary s ORDER BY order_id")
                    .fetch_all(&read.pool)
                    .await
                    .ok()?;
            let rows: Vec<OrderSummary> = rows.into_iter().map(|r| r.0).collect();
            converged(&rows, &versions).then_some(rows)
        },
    )
    .await;
    assert_same("order_summary", &expected, &summaries);

    // Search index.
    let transport = TransportBuilder::new(SingleNodeConnectionPool::new(
        search_url().parse().expect("url"),
    ))
    .disable_proxy()
    .build()
    .expect("transport");
    let search = elasticsearch::Elasticsearch::new(transport);
    let docs = eventually(
        "the search index to converge",
        Duration::from_secs(180),
        || async {
            let body: Value = search
            .search(SearchParts::Index(&[alias]))
            .body(json!({"query": {"match_all": {}}, "size": 1000, "sort": [{"order_id": "asc"}]}))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
            let docs: Vec<OrderSummary> = body["hits"]["hits"]
                .as_array()?
                .iter()
                .filter_map(|h| serde_json::from_value(h["_source"].clone()).ok())
                .collect();
            converged(&docs, &versions).then_some(docs)
        },
    )
    .await;
    assert_same("search index", &expected, &docs);

    // Status cache.
    let client = redis::Client::open(redis_url()).expect("redis");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    for summary in &expected {
        let key = format!("{prefix}order:{}", summary.order_id);
        let entry = eventually(
            "the status cache to converge",
            Duration::from_secs(180),
            || {
                let (mut conn, key) = (conn.clone(), key.clone());
                let version = summary.version.to_string();
                async move {
                    let entry: HashMap<String, String> = conn.hgetall(&key).await.ok()?;
                    (entry.get("version") == Some(&version)).then_some(entry)
                }
            },
        )
        .await;
        assert_eq!(
            entry.get("status"),
            Some(&summary.status),
            "status cache of {}",
            summary.order_id
        );
    }
    let _ = conn.del::<_, ()>(format!("{prefix}unused")).await;

    // Nothing was lost on the way: no dead letters, nothing held.
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM held_events")
        .fetch_one(&read.pool)
        .await
        .expect("held");
    assert_eq!(held, 0);
    let unpublished: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&write.pool)
        .await
        .expect("outbox");
    assert_eq!(unpublished, 0);

    // And the operator's check agrees: no drift anywhere.
    let reconciled = pipeline.orderctl(&["reconcile"]).await;
    let report = text(&reconciled.stdout);
    assert!(
        reconciled.status.success(),
        "orderctl reconcile: {report}{}",
        text(&reconciled.stderr)
    );
    for store in ["summary", "search", "status"] {
        let row: Vec<&str> = report
            .lines()
            .find(|l| l.starts_with(&format!("{store} ")))
            .unwrap_or_else(|| panic!("no {store} row in:\n{report}"))
            .split_whitespace()
            .collect();
        let n = ORDERS.to_string();
        assert_eq!(
            row[1..],
            [n.as_str(), "0", "0", "0", "0", "0", "0", "0"],
            "{report}"
        );
    }
    drop(projectors);
    drop(relay);
    drop(command);
}

fn converged(rows: &[OrderSummary], versions: &HashMap<Uuid, i64>) -> bool {
    rows.len() == versions.len()
        && rows
            .iter()
            .all(|r| versions.get(&r.order_id) == Some(&r.version))
}

/// Compares every field; `updated_at` is the time of the last event and
/// the write model keeps it per table, so it is compared as the latest of
/// those times, which is what both sides mean by it.
fn assert_same(store: &str, expected: &[OrderSummary], actual: &[OrderSummary]) {
    let actual: HashMap<Uuid, &OrderSummary> = actual.iter().map(|s| (s.order_id, s)).collect();
    for want in expected {
        let got = actual
            .get(&want.order_id)
            .unwrap_or_else(|| panic!("{store}: order {} missing", want.order_id));
        assert_eq!(
            *got, want,
            "{store}: order {} differs from the write model",
            want.order_id
        );
    }
}
