//! `orderctl reconcile` against the real stores: every kind of drift in
//! every read model is found and named, `--repair` fixes what can be fixed
//! in place, and a repair never overwrites what a projector moved on.

use std::collections::BTreeMap;
use std::time::Duration;

use orderflow_ops::backfill::backfill;
use orderflow_ops::reconcile::{Drift, Options, ReconcileReport, reconcile};
use orderflow_ops::seed::seed;
use orderflow_readmodel::OrderSummary;
use orderflow_readstore::ReadStore as _;
use orderflow_readstore::summary::SummaryProjection;
use redis::AsyncCommands as _;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::{ORDERS, Stores, command_api, pay_a_placed_order, plan, snapshot, stores};

fn options(repair: bool) -> Options {
    Options {
        batch: 100,
        repair,
        recheck_after: Duration::from_millis(200),
        examples: 50,
    }
}

async fn run(stores: &Stores, repair: bool) -> ReconcileReport {
    let report = reconcile(
        &stores.write.pool,
        &stores.targets,
        &options(repair),
        &CancellationToken::new(),
    )
    .await
    .expect("reconcile");
    assert!(report.complete);
    report
}

fn drift(report: &ReconcileReport, store: &str) -> BTreeMap<Drift, u64> {
    report
        .stores()
        .find(|(name, _)| *name == store)
        .unwrap_or_else(|| panic!("{store} was not checked"))
        .1
        .drift
        .clone()
}

async fn delivered(pool: &PgPool, n: usize) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT id FROM orders WHERE status = 'delivered' ORDER BY id LIMIT $1")
        .bind(n as i64)
        .fetch_all(pool)
        .await
        .expect("delivered orders")
}

async fn index(stores: &Stores, id: Uuid, doc: &Value, version: i64, version_type: &str) {
    let response = stores
        .search
        .index(elasticsearch::IndexParts::IndexId(
            &stores.alias,
            &id.to_string(),
        ))
        .version(version)
        .version_type(match version_type {
            "external" => elasticsearch::params::VersionType::External,
            _ => elasticsearch::params::VersionType::ExternalGte,
        })
        .body(doc.clone())
        .send()
        .await
        .expect("index");
    assert!(
        response.status_code().is_success(),
        "indexing {id}: {}",
        response.text().await.unwrap_or_default()
    );
}

#[tokio::test]
async fn reconcile_names_every_kind_of_drift_and_repair_fixes_it() {
    let mut stores = stores().await;
    let pool = stores.write.pool.clone();
    seed(&pool, &plan()).await.expect("seed");
    backfill(&pool, &stores.targets, None, 100, &CancellationToken::new())
        .await
        .expect("backfill");

    let clean = run(&stores, false).await;
    assert_eq!(clean.orders, ORDERS as u64);
    for (name, store) in clean.stores() {
        assert_eq!(store.checked, ORDERS as u64, "{name} checked");
        assert_eq!(store.drift, BTreeMap::new(), "{name} has no drift");
    }
    assert_eq!(clean.stores().count(), 3);

    // The write model moves on without the projectors: one order paid
    // (behind everywhere), one placed (missing everywhere).
    let api = command_api(&stores.write.url).await;
    let http = reqwest::Client::new();
    let paid = pay_a_placed_order(&api, &pool).await;
    let (customer, product): (Uuid, Uuid) = sqlx::query_as(
        "SELECT (SELECT id FROM customers LIMIT 1), (SELECT id FROM products LIMIT 1)",
    )
    .fetch_one(&pool)
    .await
    .expect("catalog");
    let reply = http
        .post(format!("{api}/orders"))
        .json(&json!({"customer_id": customer, "lines": [{"product_id": product, "quantity": 2}],
            "shipping_address": {"line1": "1 Main St", "city": "York", "postal_code": "YO1", "country": "GB"}}))
        .send()
        .await
        .expect("place");
    assert_eq!(reply.status(), 201);
    let placed = Uuid::parse_str(
        reply.json::<Value>().await.expect("placed")["order_id"]
            .as_str()
            .expect("id"),
    )
    .expect("uuid");

    // And each read model is damaged in each other way.
    let [lost, ahead, changed] = <[Uuid; 3]>::try_from(delivered(&pool, 3).await).expect("three");
    let stranger = Uuid::new_v4();
    let read = &stores.read.pool;
    for sql in [
        "DELETE FROM order_summary WHERE order_id = $1",
        "UPDATE order_summary SET version = 9 WHERE order_id = $2",
        "UPDATE order_summary SET customer_name = 'Tampered' WHERE order_id = $3",
        "INSERT INTO order_summary SELECT (jsonb_populate_record(s, jsonb_build_object('order_id', $4::uuid))).* \
         FROM order_summary s WHERE order_id = $3",
    ] {
        sqlx::query(sql)
            .bind(lost)
            .bind(ahead)
            .bind(changed)
            .bind(stranger)
            .execute(read)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let docs = snapshot(&mut stores, &[ahead, changed]).await.search;
    // (No document is deleted here: a delete leaves a tombstone that refuses
    // the same version for index.gc_deletes, 60 s. The placed order is the
    // index's missing document: a write that never arrived.)
    index(&stores, ahead, &docs[&ahead].0, 9, "external").await;
    let mut tampered = docs[&changed].0.clone();
    tampered["customer_name"] = json!("Tampered");
    index(
        &stores,
        changed,
        &tampered,
        docs[&changed].1,
        "external_gte",
    )
    .await;
    let mut foreign = docs[&changed].0.clone();
    foreign["order_id"] = json!(stranger);
    index(&stores, stranger, &foreign, 1, "external").await;
    let prefix = stores.prefix.clone();
    let key = move |id: Uuid| format!("{prefix}order:{id}");
    let mut redis = stores.redis.clone();
    let () = redis.del(key(lost)).await.expect("del");
    let () = redis.hset(key(ahead), "version", 9).await.expect("ahead");
    let () = redis
        .hset(key(changed), "status", "placed")
        .await
        .expect("changed");
    let () = redis
        .hset_multiple(key(stranger), &[("status", "paid"), ("version", "2")])
        .await
        .expect("stranger");

    let found = run(&stores, false).await;
    let every_kind = BTreeMap::from([
        (Drift::Missing, 2),
        (Drift::Behind, 1),
        (Drift::Ahead, 1),
        (Drift::Differs, 1),
        (Drift::Extra, 1),
    ]);
    assert_eq!(drift(&found, "summary"), every_kind, "summary drift");
    assert_eq!(drift(&found, "status"), every_kind, "status drift");
    let mut search_drift = every_kind.clone();
    search_drift.insert(Drift::Missing, 1);
    assert_eq!(drift(&found, "search"), search_drift, "search drift");
    assert_eq!(found.unresolved(), 17);
    let (_, summary) = found.stores().next().expect("summary");
    for (order, kind) in [
        (lost, Drift::Missing),
        (placed, Drift::Missing),
        (paid, Drift::Behind),
        (ahead, Drift::Ahead),
        (changed, Drift::Differs),
        (stranger, Drift::Extra),
    ] {
        assert!(
            summary.examples.contains(&(order, kind)),
            "{order} named as {kind:?} in {:?}",
            summary.examples
        );
    }

    let repaired = run(&stores, true).await;
    for (name, store) in repaired.stores() {
        let (fixed, left) = if name == "search" { (4, 1) } else { (6, 0) };
        assert_eq!(
            (store.repaired, store.unrepaired),
            (fixed, left),
            "{name} repair"
        );
    }

    // Only the search document ahead of the write model is left: the
    // engine refuses to move a document below its version in place.
    let after = run(&stores, false).await;
    assert_eq!(drift(&after, "summary"), BTreeMap::new());
    assert_eq!(drift(&after, "status"), BTreeMap::new());
    assert_eq!(drift(&after, "search"), BTreeMap::from([(Drift::Ahead, 1)]));
    assert_eq!(after.unresolved(), 1);

    let truth: Vec<OrderSummary> = orderflow_writemodel::readback::summaries(&pool, None)
        .await
        .expect("readback");
    let ids: Vec<Uuid> = truth.iter().map(|s| s.order_id).collect();
    let now = snapshot(&mut stores, &ids).await;
    assert_eq!(now.summaries.len(), truth.len(), "no extra summary rows");
    for want in &truth {
        assert_eq!(now.summaries.get(&want.order_id), Some(want));
        assert_eq!(
            now.status.get(&want.order_id),
            Some(&(want.status.clone(), want.version))
        );
    }
    let stranger_left: Option<String> = redis.hget(key(stranger), "status").await.expect("hget");
    assert_eq!(stranger_left, None, "the unknown order left the cache");
}

#[tokio::test]
async fn a_repair_never_overwrites_what_a_projector_moved_on() {
    let mut stores = stores().await;
    let pool = stores.write.pool.clone();
    seed(
        &pool,
        &orderflow_ops::seed::SeedPlan {
            orders: 20,
            ..plan()
        },
    )
    .await
    .expect("seed");
    backfill(&pool, &stores.targets, None, 100, &CancellationToken::new())
        .await
        .expect("backfill");
    let order = delivered(&pool, 1).await[0];
    let mut want = orderflow_writemodel::readback::summaries(&pool, Some(&[order]))
        .await
        .expect("readback")
        .remove(0);
    // Reconcile saw version 3 here, but a projector has written 4 since:
    // the repair must leave 4 alone.
    want.customer_name = "Stale".into();
    let summary = SummaryProjection {
        pool: stores.read.pool.clone(),
    };
    let replaced = summary
        .replace(&[(3, &want)])
        .await
        .expect("summary replace");
    let status = stores
        .targets
        .status
        .as_ref()
        .expect("status")
        .replace(&[(3, &want)])
        .await
        .expect("status replace");
    assert_eq!((replaced, status), (0, 0));
    let now = snapshot(&mut stores, &[order]).await;
    assert_ne!(now.summaries[&order].customer_name, "Stale");
    assert_eq!(now.summaries[&order].version, 4);
    assert_eq!(now.status[&order], ("delivered".to_owned(), 4));

    // With the version it really has, the same repair goes through.
    let replaced = summary
        .replace(&[(4, &want)])
        .await
        .expect("summary replace");
    assert_eq!(replaced, 1);
    let now = snapshot(&mut stores, &[order]).await;
    assert_eq!(now.summaries[&order].customer_name, "Stale");
}
