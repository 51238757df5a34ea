//! `orderctl seed` and `orderctl backfill` against the real stores: the seed
//! is a coherent write model the command service accepts, and the backfill
//! makes every read model equal to it without ever moving one backwards.

use orderflow_ops::backfill::backfill;
use orderflow_ops::seed::{SeedPlan, seed};
use orderflow_readmodel::OrderSummary;
use redis::AsyncCommands as _;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::{
    ORDERS, command_api, count, order_with_status, pay_a_placed_order, plan, snapshot, stores,
};

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
    let api = command_api(&stores.write.url).await;
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

    let truth: Vec<OrderSummary> = orderflow_writemodel::readback::summaries(&pool, None)
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
    let api = command_api(&stores.write.url).await;
    let moved = pay_a_placed_order(&api, &pool).await;
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
