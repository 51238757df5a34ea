//! The Redis status cache keeps no data of its own worth saving: when Redis
//! loses it, the status projector cannot apply the next versions (their
//! earlier versions are gone) and holds them. `orderctl backfill --only
//! status` refills the cache from the write model; the held events then turn
//! out to be duplicates and are released, and the cache carries on. All as
//! real processes.

use std::collections::HashMap;
use std::time::Duration;

use orderflow_testkit::{eventually, redis_client};
use redis::AsyncCommands as _;
use serde_json::{Value, json};
use system_tests::{Pipeline, post, text};
use uuid::Uuid;

const ORDERS: usize = 30;

async fn cached(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    order: Uuid,
) -> Option<(String, i64)> {
    let entry: HashMap<String, String> = conn
        .hgetall(format!("{prefix}order:{order}"))
        .await
        .expect("hgetall");
    Some((
        entry.get("status")?.clone(),
        entry.get("version")?.parse().ok()?,
    ))
}

async fn all_cached(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    orders: &[Uuid],
    want: (&str, i64),
) -> bool {
    for order in orders {
        let entry = cached(conn, prefix, *order).await;
        if entry.as_ref().map(|(s, v)| (s.as_str(), *v)) != Some(want) {
            return false;
        }
    }
    true
}

async fn held(pipeline: &Pipeline) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE parked) FROM held_events \
         WHERE consumer = 'status-projector'",
    )
    .fetch_one(&pipeline.read.pool)
    .await
    .expect("held events")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_restores_the_status_cache_after_redis_loses_its_data() {
    let pipeline = Pipeline::fresh("cacheloss").await;
    let prefix = pipeline.prefix.clone();
    let command = pipeline.start("order-command", &[]).await;
    let _relay = pipeline.start("outbox-relay", &[]).await;
    // A gap bound far beyond the test: what is held must be released by
    // the backfill, not parked.
    let _status = pipeline
        .start(
            "status-projector",
            &[("PROJECTOR_GAP_TIMEOUT", "10m".to_owned())],
        )
        .await;

    let http = reqwest::Client::new();
    let base = &command.base;
    let (status, customer) = post(
        &http,
        format!("{base}/customers"),
        json!({"name": "Cache Loss", "email": format!("loss-{}@example.com", pipeline.topic)}),
    )
    .await;
    assert_eq!(status, 201, "{customer}");
    let (status, product) = post(
        &http,
        format!("{base}/products"),
        json!({"sku": "LOSS-1", "name": "Lamp", "unit_price_minor": 1200, "currency": "EUR", "stock": 1000}),
    )
    .await;
    assert_eq!(status, 201, "{product}");
    let mut orders = Vec::new();
    for n in 0..ORDERS {
        let (status, placed) = post(
            &http,
            format!("{base}/orders"),
            json!({"customer_id": customer["id"], "lines": [{"product_id": product["id"], "quantity": 1}],
                   "shipping_address": {"line1": format!("{n} Main St"), "city": "York", "postal_code": "YO1", "country": "GB"}}),
        )
        .await;
        assert_eq!(status, 201, "{placed}");
        orders.push(Uuid::parse_str(placed["order_id"].as_str().expect("id")).expect("uuid"));
    }
    let mut conn = redis_client()
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    eventually(
        "every order cached as placed",
        Duration::from_secs(120),
        || {
            let (mut conn, prefix, orders) = (conn.clone(), prefix.clone(), orders.clone());
            async move {
                all_cached(&mut conn, &prefix, &orders, ("placed", 1))
                    .await
                    .then_some(())
            }
        },
    )
    .await;

    // Redis loses this pipeline's data (a restart without persistence).
    for order in &orders {
        let () = conn
            .del(format!("{prefix}order:{order}"))
            .await
            .expect("del");
    }
    for order in &orders {
        let (status, reply) = post(
            &http,
            format!("{base}/orders/{order}/pay"),
            json!({"payment_reference": "after-the-loss"}),
        )
        .await;
        assert_eq!(status, 200, "{reply}");
    }
    // Version 2 cannot follow a version 1 the cache no longer has.
    eventually("every payment held", Duration::from_secs(120), || async {
        (held(&pipeline).await.0 == ORDERS as i64).then_some(())
    })
    .await;
    assert_eq!(cached(&mut conn, &prefix, orders[0]).await, None);

    // Reconcile sees it: every order missing from the cache, exit status 3.
    let found = pipeline.orderctl(&["reconcile", "--only", "status"]).await;
    assert_eq!(found.status.code(), Some(3), "{}", text(&found.stderr));
    let table = text(&found.stdout);
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("status "))
        .unwrap_or_else(|| panic!("no status row in:\n{table}"))
        .split_whitespace()
        .collect();
    let n = ORDERS.to_string();
    // store, checked, missing, behind, ahead, differs, extra, ...
    assert_eq!(row[..7], ["status", &n, &n, "0", "0", "0", "0"], "{table}");
    assert!(
        orders
            .iter()
            .any(|o| table.contains(&format!("{o} missing"))),
        "the report names missing orders:\n{table}"
    );

    let filled = pipeline.orderctl(&["backfill", "--only", "status"]).await;
    assert!(filled.status.success(), "{}", text(&filled.stderr));

    assert!(
        all_cached(&mut conn, &prefix, &orders, ("paid", 2)).await,
        "the backfill wrote every order's current status"
    );
    eventually(
        "the held payments released",
        Duration::from_secs(60),
        || async { (held(&pipeline).await == (0, 0)).then_some(()) },
    )
    .await;

    // And the cache carries on with the next versions.
    for order in &orders {
        let (status, reply): (u16, Value) = post(
            &http,
            format!("{base}/orders/{order}/ship"),
            json!({"carrier": "UPS", "tracking_number": "1Z999"}),
        )
        .await;
        assert_eq!(status, 200, "{reply}");
    }
    eventually(
        "every order cached as shipped",
        Duration::from_secs(120),
        || {
            let (mut conn, prefix, orders) = (conn.clone(), prefix.clone(), orders.clone());
            async move {
                all_cached(&mut conn, &prefix, &orders, ("shipped", 3))
                    .await
                    .then_some(())
            }
        },
    )
    .await;
    assert_eq!(held(&pipeline).await, (0, 0));
    let clean = pipeline.orderctl(&["reconcile", "--only", "status"]).await;
    assert!(
        clean.status.success(),
        "no drift left: {}",
        text(&clean.stdout)
    );
}
