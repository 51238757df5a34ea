//! Reconcile as a job: each `orderctl reconcile` run is recorded in the
//! read database, `orderctl status` shows each model's last check, and a
//! drift induced in the stores shows in the JSON report, in the record, in
//! the status and in the query service's metrics (an `order-query`
//! process), with the documented exit statuses.

use std::time::Duration;

use redis::AsyncCommands as _;
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::{ORDERS, Stores, orderctl, plan, stores, text};

/// The value of the `name` series whose labels include all of `labels`,
/// from a Prometheus text exposition.
fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        let (set, value) = rest.split_once("} ")?;
        labels
            .iter()
            .all(|(k, v)| set.split(',').any(|l| l == format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())?
    })
}

/// Waits until order-query at `base` exports `want` for the series.
async fn exported(base: &str, name: &str, labels: &[(&str, &str)], want: f64) {
    let http = reqwest::Client::new();
    orderflow_testkit::eventually(
        &format!("{name}{labels:?} = {want} on {base}/metrics"),
        Duration::from_secs(60),
        || {
            let request = http.get(format!("{base}/metrics")).send();
            async move {
                let body = request.await.ok()?.text().await.ok()?;
                (sample(&body, name, labels) == Some(want)).then_some(())
            }
        },
    )
    .await;
}

/// Every store setting of `stores`, and `topic` as the events topic.
fn env(stores: &Stores, topic: &str) -> Vec<(&'static str, String)> {
    vec![
        ("WRITE_DATABASE_URL", stores.write.url.clone()),
        ("READ_DATABASE_URL", stores.read.url.clone()),
        ("SEARCH_URL", orderflow_testkit::search_url()),
        ("SEARCH_ALIAS", stores.alias.clone()),
        ("REDIS_URL", orderflow_testkit::redis_url()),
        ("REDIS_KEY_PREFIX", stores.prefix.clone()),
        ("KAFKA_BROKERS", orderflow_testkit::kafka_brokers()),
        ("EVENTS_TOPIC", topic.to_owned()),
    ]
}

/// Runs `orderctl <args> --json` and parses what it printed.
async fn json(args: &[&str], env: &[(&'static str, String)], exit: i32) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = orderctl(&all, env).await;
    assert_eq!(
        out.status.code(),
        Some(exit),
        "orderctl {args:?}: {}",
        text(&out)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("orderctl {args:?} prints JSON ({e}): {}", text(&out)))
}

fn model<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["models"]
        .as_array()
        .expect("models")
        .iter()
        .find(|m| m["model"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report:#}"))
}

fn last_check<'a>(status: &'a Value, name: &str) -> &'a Value {
    &status["drift_checks"]
        .as_array()
        .expect("drift_checks")
        .iter()
        .find(|m| m["model"] == name)
        .unwrap_or_else(|| panic!("no {name} in {status:#}"))["last"]
}

/// (complete, finished, orders) of run `id` as recorded.
async fn recorded_run(read: &PgPool, id: i64) -> (bool, bool, Option<i64>) {
    sqlx::query_as(
        "SELECT complete, finished_at IS NOT NULL, orders FROM reconcile_runs WHERE id = $1",
    )
    .bind(id)
    .fetch_one(read)
    .await
    .expect("the run is recorded")
}

/// The drift counts of `model` recorded for run `id`.
async fn recorded_drift(read: &PgPool, id: i64, model: &str) -> Value {
    let drift: sqlx::types::Json<Value> = sqlx::query_scalar(
        "SELECT drift FROM reconcile_run_models WHERE run_id = $1 AND model = $2",
    )
    .bind(id)
    .bind(model)
    .fetch_one(read)
    .await
    .expect("the model's row is recorded");
    drift.0
}

#[tokio::test]
async fn reconcile_runs_are_recorded_shown_by_status_and_drift_shows_in_all_three() {
    let mut stores = stores().await;
    orderflow_ops::seed::seed(&stores.write.pool, &plan())
        .await
        .expect("seed");
    orderflow_ops::backfill::backfill(
        &stores.write.pool,
        &stores.targets,
        None,
        200,
        &CancellationToken::new(),
    )
    .await
    .expect("backfill");
    let topics = orderflow_testkit::fresh_topics("octl_status", 2).await;
    let env = env(&stores, &topics.events);
    let reconcile = ["reconcile", "--recheck-after", "100ms", "--examples", "20"];

    // Before any run: every model "never checked", and that is no drift.
    let status = json(&["status"], &env, 0).await;
    for m in ["summary", "search", "status"] {
        assert!(last_check(&status, m).is_null(), "{status:#}");
    }

    // A clean run: recorded as complete, with one row per model.
    let clean = json(&reconcile, &env, 0).await;
    let first = clean["run_id"].as_i64().expect("run_id");
    assert_eq!(clean["unresolved"], 0, "{clean:#}");
    for m in ["summary", "search", "status"] {
        assert_eq!(model(&clean, m)["checked"], ORDERS, "{clean:#}");
        assert_eq!(model(&clean, m)["drifted"], 0, "{clean:#}");
    }
    assert_eq!(
        recorded_run(&stores.read.pool, first).await,
        (true, true, Some(ORDERS))
    );
    assert_eq!(
        recorded_drift(&stores.read.pool, first, "summary").await["missing"],
        0
    );

    // orderctl status shows it, for people and for scripts.
    let shown = orderctl(&["status"], &env).await;
    assert_eq!(shown.status.code(), Some(0), "{}", text(&shown));
    let table = String::from_utf8_lossy(&shown.stdout);
    for m in ["summary", "search", "status"] {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(&format!("{m}: last drift check "))
                    && l.contains(" ago: 0 drift")),
            "status shows {m}'s check:\n{table}"
        );
    }
    let status = json(&["status"], &env, 0).await;
    assert_eq!(last_check(&status, "search")["run_id"], first, "{status:#}");
    assert_eq!(status["last_run"]["run_id"], first, "{status:#}");
    assert_eq!(status["last_run"]["complete"], true, "{status:#}");

    // Drift: three summaries and two cache entries lost.
    let lost: Vec<Uuid> = sqlx::query_scalar(
        "DELETE FROM order_summary WHERE order_id IN \
         (SELECT order_id FROM order_summary ORDER BY order_id LIMIT 3) RETURNING order_id",
    )
    .fetch_all(&stores.read.pool)
    .await
    .expect("delete summaries");
    assert_eq!(lost.len(), 3);
    for id in &lost[..2] {
        let _: () = stores
            .redis
            .del(format!("{}order:{id}", stores.prefix))
            .await
            .expect("del");
    }

    let drifted = json(&reconcile, &env, 3).await;
    let second = drifted["run_id"].as_i64().expect("run_id");
    assert!(second > first);
    assert_eq!(drifted["unresolved"], 5, "{drifted:#}");
    let summary = model(&drifted, "summary");
    assert_eq!(summary["drift"]["missing"], 3, "{drifted:#}");
    assert_eq!(
        model(&drifted, "status")["drift"]["missing"],
        2,
        "{drifted:#}"
    );
    assert_eq!(model(&drifted, "search")["drifted"], 0, "{drifted:#}");
    for id in &lost {
        assert!(
            summary["examples"]
                .as_array()
                .expect("examples")
                .iter()
                .any(|e| e["order_id"] == id.to_string() && e["kind"] == "missing"),
            "{id} named as missing: {drifted:#}"
        );
    }
    assert_eq!(
        recorded_run(&stores.read.pool, second).await,
        (true, true, Some(ORDERS))
    );
    let recorded = recorded_drift(&stores.read.pool, second, "summary").await;
    assert_eq!(recorded["missing"], 3, "{recorded:#}");
    assert_eq!(recorded["behind"], 0, "{recorded:#}");

    // Status now says so, and exits 3.
    let status = json(&["status"], &env, 3).await;
    let summary = &last_check(&status, "summary")["check"];
    assert_eq!(summary["unresolved"], 3, "{status:#}");
    assert_eq!(last_check(&status, "search")["check"]["unresolved"], 0);
    let shown = orderctl(&["status"], &env).await;
    assert_eq!(shown.status.code(), Some(3), "{}", text(&shown));
    let table = String::from_utf8_lossy(&shown.stdout);
    assert!(
        table.contains("summary: last drift check") && table.contains(": 3 drift"),
        "{table}"
    );

    // The query service exports the last checks as metrics, refreshed from
    // the record (every second here), so an alert can fire on them.
    let port = system_tests::free_port();
    let mut query_env = env.clone();
    query_env.extend([
        ("QUERY_HTTP_ADDR", format!("127.0.0.1:{port}")),
        ("AUTH_DISABLED", "true".to_owned()),
        ("DRIFT_METRICS_INTERVAL", "1s".to_owned()),
    ]);
    let mut query = system_tests::ServiceProcess::start("order-query", port, &query_env);
    query.ready(Duration::from_secs(60)).await;
    let base = query.base.clone();
    let summary_missing = [("model", "summary"), ("kind", "missing")];
    exported(&base, "orderflow_drift_orders", &summary_missing, 3.0).await;
    let status_missing = [("model", "status"), ("kind", "missing")];
    exported(&base, "orderflow_drift_orders", &status_missing, 2.0).await;
    let summary = [("model", "summary")];
    exported(&base, "orderflow_drift_unresolved_orders", &summary, 3.0).await;
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    let age = sample(&metrics, "orderflow_drift_check_age_seconds", &summary)
        .unwrap_or_else(|| panic!("an age for summary in:\n{metrics}"));
    assert!(age >= 0.0, "{age}");

    // A repairing run fixes it; the next refresh says no drift is left.
    let repaired = json(
        &["reconcile", "--repair", "--recheck-after", "100ms"],
        &env,
        0,
    )
    .await;
    assert_eq!(model(&repaired, "summary")["repaired"], 3, "{repaired:#}");
    assert_eq!(repaired["unresolved"], 0, "{repaired:#}");
    exported(&base, "orderflow_drift_unresolved_orders", &summary, 0.0).await;
    exported(&base, "orderflow_drift_orders", &summary_missing, 3.0).await;
}
