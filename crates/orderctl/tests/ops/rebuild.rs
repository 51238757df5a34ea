//! `orderctl rebuild search`: a new index filled beside the live one and
//! swapped in under the alias fixes what reconcile cannot repair in place,
//! and a rebuild that stopped half-way is carried on by the next.

use std::collections::BTreeMap;
use std::time::Duration;

use orderflow_ops::backfill::{Targets, backfill};
use orderflow_ops::rebuild::rebuild_search;
use orderflow_ops::reconcile::{Drift, Options, reconcile};
use orderflow_ops::seed::seed;
use orderflow_readstore::search::index;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::helpers::{ORDERS, Stores, command_api, pay_a_placed_order, plan, snapshot, stores};

async fn search_drift(stores: &Stores) -> BTreeMap<Drift, u64> {
    let targets = Targets {
        search: stores.targets.search.clone(),
        ..Targets::default()
    };
    let options = Options {
        batch: 100,
        repair: false,
        recheck_after: Duration::from_millis(100),
        examples: 5,
    };
    let report = reconcile(
        &stores.write.pool,
        &targets,
        &options,
        &CancellationToken::new(),
    )
    .await
    .expect("reconcile");
    assert_eq!(
        report.search.as_ref().expect("search").checked,
        ORDERS as u64
    );
    report.search.expect("search").drift
}

#[tokio::test]
async fn a_rebuild_swaps_in_a_fresh_index_that_equals_the_write_model() {
    let mut stores = stores().await;
    let pool = stores.write.pool.clone();
    seed(&pool, &plan()).await.expect("seed");
    let token = CancellationToken::new();
    backfill(&pool, &stores.targets, None, 100, &token)
        .await
        .expect("backfill");
    let alias = stores.alias.clone();
    assert_eq!(
        index::behind(&stores.search, &alias).await.expect("alias"),
        [format!("{alias}_v1")]
    );

    // A document ahead of the write model: reconcile cannot move it back.
    let order: uuid::Uuid = sqlx::query_scalar("SELECT id FROM orders ORDER BY id LIMIT 1")
        .fetch_one(&pool)
        .await
        .expect("an order");
    let doc = snapshot(&mut stores, &[order]).await.search[&order]
        .0
        .clone();
    let indexed = stores
        .search
        .index(elasticsearch::IndexParts::IndexId(
            &alias,
            &order.to_string(),
        ))
        .version(9)
        .version_type(elasticsearch::params::VersionType::External)
        .body(doc)
        .send()
        .await
        .expect("index");
    assert!(indexed.status_code().is_success());
    assert_eq!(
        search_drift(&stores).await,
        BTreeMap::from([(Drift::Ahead, 1)])
    );

    // An order that moved on a moment ago (its row's updated_at is recent):
    // both catch-up passes look at it again.
    let api = command_api(&stores.write.url).await;
    let moved = pay_a_placed_order(&api, &pool).await;

    let report = rebuild_search(&pool, &stores.search, &alias, 100, false, &token)
        .await
        .expect("rebuild");
    assert_eq!(report.from, [format!("{alias}_v1")]);
    assert_eq!(report.to, format!("{alias}_v2"));
    assert!(!report.resumed);
    assert_eq!(
        report.fill.search, ORDERS as u64,
        "every order indexed anew"
    );
    // The fill already wrote its new version: the passes write nothing.
    assert_eq!(
        (report.before_swap, report.after_swap),
        ((1, 0), (1, 0)),
        "the recently changed order is looked at twice"
    );
    assert_eq!(
        snapshot(&mut stores, &[moved]).await.search[&moved].1,
        2,
        "the new index has the paid order"
    );
    assert_eq!(
        index::behind(&stores.search, &alias).await.expect("alias"),
        [format!("{alias}_v2")]
    );
    assert!(
        !index::exists(&stores.search, &format!("{alias}_v1"))
            .await
            .expect("exists"),
        "the old index is deleted"
    );
    assert_eq!(search_drift(&stores).await, BTreeMap::new());
    let hits: serde_json::Value = stores
        .search
        .search(elasticsearch::SearchParts::Index(&[&alias]))
        .body(json!({"query": {"match": {"product_names": "lamp"}}, "size": 0}))
        .send()
        .await
        .expect("search")
        .json()
        .await
        .expect("hits");
    assert!(
        hits["hits"]["total"]["value"].as_i64().unwrap_or(0) > 0,
        "the new index answers full-text queries: {hits}"
    );
}

#[tokio::test]
async fn a_rebuild_that_stopped_half_way_is_carried_on() {
    let stores = stores().await;
    let pool = stores.write.pool.clone();
    seed(&pool, &plan()).await.expect("seed");
    backfill(&pool, &stores.targets, None, 100, &CancellationToken::new())
        .await
        .expect("backfill");
    let alias = stores.alias.clone();

    // A rebuild stopped after its first batch, before the swap.
    let stopped = CancellationToken::new();
    stopped.cancel();
    let failed = rebuild_search(&pool, &stores.search, &alias, 100, false, &stopped).await;
    assert!(failed.is_err(), "a stopped rebuild says so");
    assert_eq!(
        index::behind(&stores.search, &alias).await.expect("alias"),
        [format!("{alias}_v1")],
        "the alias has not moved"
    );
    let report = rebuild_search(
        &pool,
        &stores.search,
        &alias,
        100,
        true,
        &CancellationToken::new(),
    )
    .await
    .expect("rebuild");
    assert!(report.resumed, "the half-filled index is picked up");
    assert_eq!(report.to, format!("{alias}_v2"));
    assert_eq!(
        report.fill.search,
        ORDERS as u64 - 100,
        "only what the stopped rebuild had not written"
    );
    assert!(
        index::exists(&stores.search, &format!("{alias}_v1"))
            .await
            .expect("exists"),
        "--keep-old keeps the old index"
    );
    assert_eq!(search_drift(&stores).await, BTreeMap::new());
}
