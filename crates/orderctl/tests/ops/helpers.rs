//! Stores, a seeded plan and a command API shared by the orderctl tests.

use std::collections::HashMap;
use std::time::Duration;

use elasticsearch::{Elasticsearch, MgetParts};
use orderflow_ops::backfill::Targets;
use orderflow_ops::seed::SeedPlan;
use orderflow_readmodel::OrderSummary;
use orderflow_testkit::{
    TestDatabase, fresh_index_name, fresh_read_database, fresh_write_database, redis_connection,
};
use redis::AsyncCommands as _;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

pub const ORDERS: i64 = 630;

pub fn plan() -> SeedPlan {
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

pub struct Stores {
    pub write: TestDatabase,
    pub read: TestDatabase,
    pub search: Elasticsearch,
    pub alias: String,
    pub redis: redis::aio::MultiplexedConnection,
    pub prefix: String,
    pub targets: Targets,
}

pub async fn stores() -> Stores {
    let write = fresh_write_database("seed_write").await;
    let read = fresh_read_database("seed_read").await;
    let search = orderflow_testkit::search_client().await;
    let alias = fresh_index_name("seed_orders");
    orderflow_readstore::search::index::ensure(&search, &alias)
        .await
        .expect("index");
    let (redis, prefix) = redis_connection("seed").await;
    let targets = Targets {
        summary: Some(read.pool.clone()),
        search: Some(orderflow_readstore::search::SearchProjection {
            client: search.clone(),
            alias: alias.clone(),
        }),
        status: Some(orderflow_readstore::status::StatusProjection::new(
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

/// Runs the built `orderctl` binary with `args` and `env` (and nothing of
/// the caller's store settings), logging only warnings.
pub async fn orderctl(args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_orderctl"));
    command
        .args(args)
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1");
    for name in [
        "WRITE_DATABASE_URL",
        "READ_DATABASE_URL",
        "REDIS_URL",
        "REDIS_KEY_PREFIX",
        "SEARCH_URL",
        "SEARCH_ALIAS",
        "KAFKA_BROKERS",
        "EVENTS_TOPIC",
    ] {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("orderctl task")
        .expect("running orderctl")
}

/// Standard output and standard error, for assertion messages.
pub fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Every read model, as `order id → (status, version)`, plus the summaries.
pub struct Snapshot {
    pub summaries: HashMap<Uuid, OrderSummary>,
    pub search: HashMap<Uuid, (Value, i64)>,
    pub status: HashMap<Uuid, (String, i64)>,
}

pub async fn snapshot(stores: &mut Stores, orders: &[Uuid]) -> Snapshot {
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

/// The command service, as a process of the built `order-command` binary,
/// on the seeded write database; stopped when dropped. Formats (and
/// derefs) as its base URL.
pub struct CommandApi(system_tests::ServiceProcess);

impl std::ops::Deref for CommandApi {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0.base
    }
}

impl std::fmt::Display for CommandApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.base)
    }
}

/// Starts the command service on the write database at `url`.
pub async fn command_api(url: &str) -> CommandApi {
    let port = system_tests::free_port();
    let mut process = system_tests::ServiceProcess::start(
        "order-command",
        port,
        &[
            ("WRITE_DATABASE_URL", url.to_owned()),
            ("COMMAND_HTTP_ADDR", format!("127.0.0.1:{port}")),
            ("MIGRATE_ON_START", "false".to_owned()),
            ("AUTH_DISABLED", "true".to_owned()),
        ],
    );
    process.ready(Duration::from_secs(60)).await;
    CommandApi(process)
}

pub async fn order_with_status(pool: &PgPool, status: &str, paid: bool) -> Uuid {
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

/// Pays a seeded placed order through the command API at `api`; returns it.
pub async fn pay_a_placed_order(api: &str, pool: &PgPool) -> Uuid {
    let order = order_with_status(pool, "placed", false).await;
    let reply = reqwest::Client::new()
        .post(format!("{api}/orders/{order}/pay"))
        .json(&json!({}))
        .send()
        .await
        .expect("pay");
    assert_eq!(reply.status(), 200, "paying {order}");
    order
}
