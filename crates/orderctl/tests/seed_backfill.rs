//! `orderctl seed` and `orderctl backfill` against the real stores: the seed
//! is a coherent write model the command service accepts, and the backfill
//! makes every read model equal to it without ever moving one backwards.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use elasticsearch::{Elasticsearch, MgetParts};
use orderctl::backfill::{Targets, backfill};
use orderctl::seed::{SeedPlan, seed};
use orderflow_readmodel::OrderSummary;
use orderflow_testkit::{TestDatabase, fresh_database, fresh_index_name, redis_connection};
use redis::AsyncCommands as _;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const ORDERS: i64 = 630;

fn plan() -> SeedPlan {
    SeedPlan {
        orders: ORDERS,
        lines_per_order: 5,
        customers: Some(40),
        products: 60,
        days: 30,
        chunk: 100,
        jobs: 2,
        tag: None,
    }
}

struct Stores {
    write: TestDatabase,
    read: TestDatabase,
    search: Elasticsearch,
    alias: String,
    redis: redis::aio::MultiplexedConnection,
    prefix: String,
    targets: Targets,
}

async fn stores() -> Stores {
    let write = fresh_database("seed_write").await;
    let read = fresh_database("seed_read").await;
    order_command::MIGRATOR
        .run(&write.pool)
        .await
        .expect("write migrations");
    orderflow_projector::MIGRATOR
        .run(&read.pool)
        .await
        .expect("read migrations");
    let search = orderflow_testkit::search_client().await;
    let alias = fresh_index_name("seed_orders");
    search_projector::index::ensure(&search, &alias)
        .await
        .expect("index");
    let (redis, prefix) = redis_connection("seed").await;
    let targets = Targets {
        summary: Some(read.pool.clone()),
        search: Some(search_projector::SearchProjection {
            client: search.clone(),
            alias: alias.clone(),
        }),
        status: Some(status_projector::StatusProjection::new(
            orderflow_testkit::redis_client(),
            prefix.clone(),
        )),
    };
    Stores {
        write,
        read,
        search,
        alias,
        redis,
        prefix,
        targets,
    }
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Every read model, as `order id → (status, version)`, plus the summaries.
struct Snapshot {
    summaries: HashMap<Uuid, OrderSummary>,
    search: HashMap<Uuid, (Value, i64)>,
    status: HashMap<Uuid, (String, i64)>,
}

async fn snapshot(stores: &mut Stores, orders: &[Uuid]) -> Snapshot {
    let rows: Vec<sqlx::types::Json<OrderSummary>> =
        sqlx::query_scalar("SELECT to_jsonb(s) FROM order_summary s")
            .fetch_all(&stores.read.pool)
            .await
            .expect("summaries");
    let summaries = rows.into_iter().map(|r| (r.0.order_id, r.0)).collect();

    let ids: Vec<String> = orders.iter().map(Uuid::to_string).collect();
    let body: Value = stores
        .search
        .mget(MgetParts::Index(&stores.alias))
        .body(json!({"ids": ids}))
        .send()
        .await
        .expect("mget")
        .json()
        .await
        .expect("mget body");
    let search = body["docs"]
        .as_array()
        .expect("docs")
        .iter()
        .filter(|d| d["found"] == json!(true))
        .map(|d| {
            let id = Uuid::parse_str(d["_id"].as_str().expect("_id")).expect("uuid");
            (
                id,
                (
                    d["_source"].clone(),
                    d["_version"].as_i64().expect("_version"),
                ),
            )
        })
        .collect();

    let mut status = HashMap::new();
    for id in orders {
        let hash: HashMap<String, String> = stores
            .redis
            .hgetall(format!("{}order:{id}", stores.prefix))
            .await
            .expect("hgetall");
        if let (Some(s), Some(v)) = (hash.get("status"), hash.get("version")) {
            status.insert(*id, (s.clone(), v.parse().expect("version")));
        }
    }
    Snapshot {
        summaries,
        search,
        status,
    }
}

/// Serves the command API on the seeded write database.
async fn command_api(pool: PgPool) -> String {
    let state = order_command::app::AppState {
        pool,
        idempotency_ttl: Duration::from_secs(3600),
        faults: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        axum::serve(listener, order_command::app::router(state))
            .await
            .expect("command api");
    });
    base
}

async fn order_with_status(pool: &PgPool, status: &str, paid: bool) -> Uuid {
    sqlx::query_scalar(
        "SELECT o.id FROM orders o LEFT JOIN payments p ON p.order_id = o.id \
         WHERE o.status = $1 AND (p.order_id IS NOT NULL) = $2 ORDER BY o.id LIMIT 1",
    )
    .bind(status)
    .bind(paid)
    .fetch_one(pool)
    .await
    .unwrap_or_else(|e| panic!("a seeded {status} order: {e}"))
}

#[tokio::test]
async fn seed_writes_a_coherent_write_model_the_command_service_accepts() {
    let stores = stores().await;
    let pool = &stores.write.pool;
    let report = seed(pool, &plan()).await.expect("seed");

    assert_eq!(report.orders, ORDERS);
    assert_eq!(count(pool, "SELECT count(*) FROM orders").await, ORDERS);
    assert_eq!(count(pool, "SELECT count(*) FROM customers").await, 40);
    assert_eq!(count(pool, "SELECT count(*) FROM products").await, 60);
    let lines = count(pool, "SELECT count(*) FROM order_lines").await;
    assert_eq!(report.lines, lines, "the report counts the lines written");
    // 630 is a multiple of 9, the period of the line-count pattern.
    assert_eq!(lines, ORDERS * 5, "five lines per order on average");

    // Totals are the sum of the lines; no order names a product twice
    // (the unique constraint would have refused it).
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM orders o WHERE total_minor <> \
             (SELECT sum(line_total_minor) FROM order_lines l WHERE l.order_id = o.id)"
        )
        .await,
        0
    );
    // Each order's row is what its events would have left behind.
    let incoherent = count(
        pool,
        "SELECT count(*) FROM orders o \
         LEFT JOIN payments p ON p.order_id = o.id LEFT JOIN shipments s ON s.order_id = o.id \
         WHERE NOT CASE o.status \
           WHEN 'placed' THEN o.version = 1 AND p.order_id IS NULL AND s.order_id IS NULL \
           WHEN 'paid' THEN o.version = 2 AND p.amount_minor = o.total_minor AND s.order_id IS NULL \
           WHEN 'shipped' THEN o.version = 3 AND p.order_id IS NOT NULL AND s.tracking_number IS NOT NULL \
           WHEN 'delivered' THEN o.version = 4 AND s.order_id IS NOT NULL AND o.delivered_at > s.shipped_at \
           WHEN 'cancelled' THEN o.cancelled_at IS NOT NULL AND s.order_id IS NULL AND CASE \
               WHEN p.order_id IS NULL THEN o.version = 2 \
               ELSE o.version = 3 AND p.refund_minor = o.total_minor END \
         END",
    )
    .await;
    assert_eq!(incoherent, 0, "orders whose row contradicts their status");
    for status in ["placed", "paid", "shipped", "delivered", "cancelled"] {
        let n = count(
            pool,
            &format!("SELECT count(*) FROM orders WHERE status = '{status}'"),
        )
        .await;
        assert!(n > 0, "the seed has {status} orders");
    }
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM orders WHERE placed_at > now() - interval '1 day'"
        )
        .await,
        0,
        "every lifecycle timestamp is in the past"
    );

    // The command service takes seeded orders further, version by version.
    let api = command_api(pool.clone()).await;
    let http = reqwest::Client::new();
    let placed = order_with_status(pool, "placed", false).await;
    let paid = order_with_status(pool, "paid", true).await;
    let shipped = order_with_status(pool, "shipped", true).await;
    for (order, action, body, version) in [
        (placed, "pay", json!({}), 2),
        (paid, "cancel", json!({"reason": "changed plans"}), 3),
        (shipped, "deliver", json!({}), 4),
    ] {
        let response = http
            .post(format!("{api}/orders/{order}/{action}"))
            .json(&body)
            .send()
            .await
            .expect("command");
        let status = response.status();
        let reply: Value = response.json().await.expect("reply");
        assert_eq!(status, 200, "{action} on a seeded order: {reply}");
        assert_eq!(reply["version"], json!(version), "{action}: {reply}");
    }
    let refund: Option<i64> =
        sqlx::query_scalar("SELECT refund_minor FROM payments WHERE order_id = $1")
            .bind(paid)
            .fetch_one(pool)
            .await
            .expect("refund");
    assert!(
        refund.is_some_and(|r| r > 0),
        "a paid seeded order refunds its total"
    );

    // A second seed adds to the first instead of colliding with it.
    let again = seed(
        pool,
        &SeedPlan {
            orders: 9,
            ..plan()
        },
    )
    .await
    .expect("second seed");
    assert_ne!(again.tag, report.tag);
    assert_eq!(count(pool, "SELECT count(*) FROM orders").await, ORDERS + 9);
}

#[tokio::test]
async fn backfill_makes_every_read_model_equal_to_the_write_model_and_never_goes_back() {
    let mut stores = stores().await;
    let pool = stores.write.pool.clone();
    seed(&pool, &plan()).await.expect("seed");
    let token = CancellationToken::new();

    let first = backfill(&pool, &stores.targets, None, 100, &token)
        .await
        .expect("backfill");
    assert!(first.complete);
    assert_eq!(first.orders, ORDERS as u64);
    assert_eq!(
        (first.summary, first.search, first.status),
        (ORDERS as u64, ORDERS as u64, ORDERS as u64),
        "every order written to every read model"
    );

    let truth: Vec<OrderSummary> = order_command::readback::summaries(&pool, None)
        .await
        .expect("readback");
    let ids: Vec<Uuid> = truth.iter().map(|s| s.order_id).collect();
    let snap = snapshot(&mut stores, &ids).await;
    assert_eq!(snap.summaries.len(), truth.len());
    assert_eq!(snap.search.len(), truth.len());
    assert_eq!(snap.status.len(), truth.len());
    for expected in &truth {
        let id = expected.order_id;
        assert_eq!(snap.summaries.get(&id), Some(expected), "summary of {id}");
        let (source, version) = &snap.search[&id];
        assert_eq!(*version, expected.version, "search version of {id}");
        let indexed: OrderSummary =
            serde_json::from_value(source.clone()).expect("document is a summary");
        assert_eq!(&indexed, expected, "search document of {id}");
        assert_eq!(
            source["skus"].as_array().map(Vec::len),
            Some(expected.lines.len())
        );
        assert_eq!(
            snap.status[&id],
            (expected.status.clone(), expected.version),
            "status of {id}"
        );
    }

    // Repeated: nothing changes.
    let again = backfill(&pool, &stores.targets, None, 100, &token)
        .await
        .expect("second backfill");
    assert_eq!(again.orders, ORDERS as u64);
    assert_eq!((again.summary, again.search, again.status), (0, 0, 0));

    // One order moves on in the write model; another is newer in the read
    // models than the write model says (a projector that got there first).
    let api = command_api(pool.clone()).await;
    let moved = order_with_status(&pool, "placed", false).await;
    let response = reqwest::Client::new()
        .post(format!("{api}/orders/{moved}/pay"))
        .json(&json!({}))
        .send()
        .await
        .expect("pay");
    assert_eq!(response.status(), 200);
    let ahead = *ids.iter().find(|id| **id != moved).expect("another order");
    sqlx::query("UPDATE order_summary SET version = 99, status = 'ahead' WHERE order_id = $1")
        .bind(ahead)
        .execute(&stores.read.pool)
        .await
        .expect("summary ahead");
    let _: () = stores
        .redis
        .hset_multiple(
            format!("{}order:{ahead}", stores.prefix),
            &[("version", "99"), ("status", "ahead")],
        )
        .await
        .expect("status ahead");
    let mut doc = serde_json::to_value(&snap.search[&ahead].0).expect("doc");
    doc["status"] = json!("ahead");
    let indexed = stores
        .search
        .index(elasticsearch::IndexParts::IndexId(
            &stores.alias,
            &ahead.to_string(),
        ))
        .version(99)
        .version_type(elasticsearch::params::VersionType::External)
        .body(doc)
        .send()
        .await
        .expect("index ahead");
    assert!(indexed.status_code().is_success());

    let third = backfill(&pool, &stores.targets, None, 100, &token)
        .await
        .expect("third backfill");
    assert_eq!(
        (third.summary, third.search, third.status),
        (1, 1, 1),
        "only the order that moved is written"
    );
    let snap = snapshot(&mut stores, &[moved, ahead]).await;
    assert_eq!(snap.summaries[&moved].version, 2);
    assert_eq!(snap.summaries[&moved].status, "paid");
    assert_eq!(snap.search[&moved].1, 2);
    assert_eq!(snap.status[&moved], ("paid".to_owned(), 2));
    assert_eq!(snap.summaries[&ahead].version, 99, "summary not moved back");
    assert_eq!(snap.search[&ahead].1, 99, "document not moved back");
    assert_eq!(snap.search[&ahead].0["status"], json!("ahead"));
    assert_eq!(
        snap.status[&ahead],
        ("ahead".to_owned(), 99),
        "status not moved back"
    );

    // Resumed after an order: exactly the orders after it.
    let mut sorted = ids.clone();
    sorted.sort();
    let cursor = sorted[400];
    let resumed = backfill(&pool, &stores.targets, Some(cursor), 64, &token)
        .await
        .expect("resumed backfill");
    assert_eq!(resumed.orders, (sorted.len() - 401) as u64);
    assert_eq!(resumed.last, sorted.last().copied());
}

#[tokio::test]
async fn a_cancelled_backfill_stops_between_batches_and_says_where() {
    let stores = stores().await;
    let pool = stores.write.pool.clone();
    seed(&pool, &plan()).await.expect("seed");
    let token = CancellationToken::new();
    token.cancel();
    let report = backfill(&pool, &stores.targets, None, 50, &token)
        .await
        .expect("backfill");
    assert!(!report.complete);
    assert_eq!(report.orders, 50, "one batch, then the stop");
    let first: Uuid = sqlx::query_scalar("SELECT id FROM orders ORDER BY id OFFSET 49 LIMIT 1")
        .fetch_one(&pool)
        .await
        .expect("50th order");
    assert_eq!(
        report.last,
        Some(first),
        "the cursor names the last order done"
    );
    assert_eq!(
        count(&stores.read.pool, "SELECT count(*) FROM order_summary").await,
        50
    );
}
