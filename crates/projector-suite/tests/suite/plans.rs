//! The inbox reads keep one plan whatever the inbox's statistics say.
//!
//! A projector prepares its statements on its first batches, when a fresh
//! inbox (a new deployment, a new consumer, a replay's scope) holds a few
//! rows and has never been analysed. A plan chosen then and kept while the
//! inbox grows must still look each event id up by the primary key; the
//! plain `consumer = $1 AND event_id = ANY($2)` got a scan of all the
//! consumer's rows with the ids as a filter, slower with every batch.
//! The case builds the generic plan on a tiny unanalysed inbox, grows it,
//! and reads the plan Postgres runs.

use orderflow_readstore::summary::APPLY_READ;
use serde_json::Value;
use sqlx::{Connection as _, Row as _};

const CONSUMER: &str = "plan-probe";

/// Every plan node that reads `relation`.
fn scans<'a>(node: &'a Value, relation: &str, found: &mut Vec<&'a Value>) {
    if node["Relation Name"] == relation {
        found.push(node);
    }
    for child in node["Plans"].as_array().into_iter().flatten() {
        scans(child, relation, found);
    }
}

async fn insert(conn: &mut sqlx::PgConnection, rows: i64) {
    sqlx::query(
        "INSERT INTO inbox (consumer, event_id, aggregate_id, aggregate_version) \
         SELECT $1, gen_random_uuid(), gen_random_uuid(), 1 FROM generate_series(1, $2)",
    )
    .bind(CONSUMER)
    .bind(rows)
    .execute(conn)
    .await
    .expect("insert into the inbox");
}

/// The plan of the statement prepared as `name`, run on `args`.
async fn plan(conn: &mut sqlx::PgConnection, name: &str, args: &str) -> Value {
    let row = sqlx::raw_sql(&format!(
        "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {name}({args})"
    ))
    .fetch_one(&mut *conn)
    .await
    .expect("explain");
    let text: String = row.try_get_unchecked(0).expect("plan text");
    let plan: Value = serde_json::from_str(&text).expect("plan json");
    plan[0]["Plan"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_reads_probe_the_primary_key_on_a_young_inbox() {
    let db = orderflow_testkit::fresh_read_database("plans").await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    insert(&mut conn, 20).await;
    let ids: Vec<String> = (0..500).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let ids = format!("'{{{}}}'::uuid[]", ids.join(","));
    let statements = [
        (
            "seen",
            "text, uuid[]",
            orderflow_projector::inbox::SEEN,
            format!("'{CONSUMER}', {ids}"),
        ),
        (
            "summary_read",
            "uuid[], text, uuid[]",
            APPLY_READ,
            format!("{ids}, '{CONSUMER}', {ids}"),
        ),
    ];
    // The plan each statement gets on the tiny inbox, kept as a prepared
    // statement keeps it.
    sqlx::raw_sql("SET plan_cache_mode = force_generic_plan")
        .execute(&mut conn)
        .await
        .expect("plan_cache_mode");
    for (name, types, sql, args) in &statements {
        sqlx::raw_sql(&format!("PREPARE {name}({types}) AS {sql}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("prepare {name}: {e}"));
        sqlx::raw_sql(&format!("EXECUTE {name}({args})"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("execute {name}: {e}"));
    }
    insert(&mut conn, 20_000).await;
    for (name, _, _, args) in &statements {
        let plan = plan(&mut conn, name, args).await;
        let mut found = Vec::new();
        scans(&plan, "inbox", &mut found);
        assert!(
            !found.is_empty(),
            "{name}: no scan of the inbox in {plan:#}"
        );
        for scan in found {
            let cond = scan["Index Cond"].as_str().unwrap_or_default();
            assert!(
                cond.contains("consumer") && cond.contains("event_id"),
                "{name}: the inbox is not probed by (consumer, event_id): {scan:#}"
            );
            assert_eq!(
                scan["Actual Loops"], 500,
                "{name}: one probe per event id: {scan:#}"
            );
        }
    }
}
