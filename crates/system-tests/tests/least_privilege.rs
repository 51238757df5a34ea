//! Least privilege, for real: after `orderctl setup`, each service's own
//! credentials are refused outside their role and allowed inside it, on the
//! real Postgres and Redis. (That the allowed rights are enough is what
//! every other system test shows: their pipelines run each service with its
//! own role.)
//!
//! Each probe is one statement with zero effect (`WHERE false`, a rolled
//! back transaction), so it tests the privilege and nothing else; a refusal
//! must be Postgres's `insufficient_privilege` (42501) or Redis's ACL
//! refusal (`NOPERM`, or a script's "can't run this command"), never some
//! other error that would pass for one.

#![allow(clippy::print_stdout)] // the matrix is the output

use sqlx::{Connection as _, PgConnection};
use system_tests::Pipeline;

/// Whether a probe should pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Allowed,
    Refused,
}
use Expect::{Allowed, Refused};

#[derive(Debug, Clone, Copy)]
enum Db {
    Write,
    Read,
}

/// (service role suffix, database, statement, expectation)
const SQL_PROBES: &[(&str, Db, &str, Expect)] = &[
    // order-command: read-write on the write model, nothing else.
    ("command", Db::Write, "SELECT count(*) FROM orders", Allowed),
    (
        "command",
        Db::Write,
        "UPDATE orders SET version = version WHERE false",
        Allowed,
    ),
    (
        "command",
        Db::Write,
        "INSERT INTO outbox (event_id) SELECT event_id FROM outbox WHERE false",
        Allowed,
    ),
    (
        "command",
        Db::Write,
        "DELETE FROM idempotency_keys WHERE false",
        Allowed,
    ),
    (
        "command",
        Db::Write,
        "SELECT count(*) FROM _sqlx_migrations",
        Refused,
    ),
    (
        "command",
        Db::Write,
        "CREATE TABLE intruder (id int)",
        Refused,
    ),
    ("command", Db::Write, "DROP TABLE orders", Refused),
    ("command", Db::Write, "TRUNCATE outbox", Refused),
    // outbox-relay: the outbox only, and never appending to it; it moves
    // what Kafka acknowledged into outbox_published, and prunes that.
    ("relay", Db::Write, "SELECT count(*) FROM outbox", Allowed),
    (
        "relay",
        Db::Write,
        "UPDATE outbox SET parked_at = now() WHERE false",
        Allowed,
    ),
    (
        "relay",
        Db::Write,
        "DELETE FROM outbox WHERE false",
        Allowed,
    ),
    (
        "relay",
        Db::Write,
        "INSERT INTO outbox_published SELECT * FROM outbox_published WHERE false",
        Allowed,
    ),
    (
        "relay",
        Db::Write,
        "DELETE FROM outbox_published WHERE false",
        Allowed,
    ),
    (
        "relay",
        Db::Write,
        "UPDATE outbox_published SET kafka_offset = 0 WHERE false",
        Refused,
    ),
    (
        "relay",
        Db::Write,
        "INSERT INTO outbox (event_id) SELECT event_id FROM outbox WHERE false",
        Refused,
    ),
    ("relay", Db::Write, "SELECT count(*) FROM orders", Refused),
    (
        "relay",
        Db::Write,
        "SELECT count(*) FROM customers",
        Refused,
    ),
    (
        "relay",
        Db::Write,
        "SELECT count(*) FROM idempotency_keys",
        Refused,
    ),
    // order-query: reads both databases, writes neither.
    ("query", Db::Write, "SELECT count(*) FROM orders", Allowed),
    (
        "query",
        Db::Write,
        "SELECT count(*) FROM order_lines",
        Allowed,
    ),
    (
        "query",
        Db::Write,
        "INSERT INTO customers SELECT * FROM customers WHERE false",
        Refused,
    ),
    (
        "query",
        Db::Write,
        "UPDATE outbox SET parked_at = now() WHERE false",
        Refused,
    ),
    (
        "query",
        Db::Write,
        "SELECT count(*) FROM outbox_published",
        Allowed,
    ),
    (
        "query",
        Db::Write,
        "DELETE FROM outbox_published WHERE false",
        Refused,
    ),
    (
        "query",
        Db::Read,
        "SELECT count(*) FROM order_summary",
        Allowed,
    ),
    (
        "query",
        Db::Read,
        "INSERT INTO order_summary SELECT * FROM order_summary WHERE false",
        Refused,
    ),
    (
        "query",
        Db::Read,
        "UPDATE order_summary SET version = version WHERE false",
        Refused,
    ),
    ("query", Db::Read, "DELETE FROM inbox WHERE false", Refused),
    ("query", Db::Read, "CREATE TABLE intruder (id int)", Refused),
    // summary-projector: its table and the runtime tables.
    (
        "summary_projector",
        Db::Read,
        "INSERT INTO order_summary SELECT * FROM order_summary WHERE false",
        Allowed,
    ),
    (
        "summary_projector",
        Db::Read,
        "UPDATE order_summary SET version = version WHERE false",
        Allowed,
    ),
    (
        "summary_projector",
        Db::Read,
        "DELETE FROM order_summary WHERE false",
        Refused,
    ),
    (
        "summary_projector",
        Db::Read,
        "SELECT count(*) FROM inbox",
        Allowed,
    ),
    (
        "summary_projector",
        Db::Read,
        "DELETE FROM held_events WHERE false",
        Allowed,
    ),
    (
        "summary_projector",
        Db::Read,
        "DELETE FROM inbox WHERE false",
        Refused,
    ),
    (
        "summary_projector",
        Db::Read,
        "DROP TABLE order_summary",
        Refused,
    ),
    // search- and status-projector: the runtime tables, not the summary.
    (
        "search_projector",
        Db::Read,
        "SELECT count(*) FROM inbox",
        Allowed,
    ),
    (
        "search_projector",
        Db::Read,
        "UPDATE held_events SET parked = true WHERE false",
        Allowed,
    ),
    (
        "search_projector",
        Db::Read,
        "UPDATE order_summary SET version = version WHERE false",
        Refused,
    ),
    (
        "search_projector",
        Db::Read,
        "SELECT count(*) FROM order_summary",
        Refused,
    ),
    (
        "status_projector",
        Db::Read,
        "INSERT INTO held_events SELECT * FROM held_events WHERE false",
        Allowed,
    ),
    (
        "status_projector",
        Db::Read,
        "INSERT INTO order_summary SELECT * FROM order_summary WHERE false",
        Refused,
    ),
];

/// Databases a role may not even connect to.
const CONNECT_PROBES: &[(&str, Db)] = &[
    ("command", Db::Read),
    ("relay", Db::Read),
    ("summary_projector", Db::Write),
    ("search_projector", Db::Write),
    ("status_projector", Db::Write),
];

fn outcome(result: Result<(), sqlx::Error>, what: &str) -> Expect {
    match result {
        Ok(()) => Allowed,
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => Refused,
        Err(e) => panic!("{what}: neither allowed nor refused for lack of privilege: {e}"),
    }
}

async fn connect(url: &str) -> Result<PgConnection, sqlx::Error> {
    PgConnection::connect(url).await
}

/// Runs `sql` in a transaction that is rolled back.
async fn probe(conn: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    let result = sqlx::raw_sql(sql).execute(&mut *tx).await.map(|_| ());
    tx.rollback().await?;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_is_refused_outside_its_role_and_allowed_inside() {
    let pipeline = Pipeline::fresh("privilege").await;
    let access = &pipeline.access;
    let url = |db: Db| match db {
        Db::Write => pipeline.write.url.as_str(),
        Db::Read => pipeline.read.url.as_str(),
    };
    let mut failures = Vec::new();
    for (role, db, sql, expected) in SQL_PROBES {
        let what = format!("{role} on the {db:?} database: {sql}");
        let mut conn = connect(&access.url_as(url(*db), &access.role(role)))
            .await
            .unwrap_or_else(|e| panic!("{role} cannot connect to the {db:?} database: {e}"));
        let got = outcome(probe(&mut conn, sql).await, &what);
        println!("{:<8} {what}", format!("{got:?}"));
        if got != *expected {
            failures.push(format!("{what}: expected {expected:?}, got {got:?}"));
        }
    }
    for (role, db) in CONNECT_PROBES {
        let what = format!("{role} connecting to the {db:?} database");
        let got = outcome(
            connect(&access.url_as(url(*db), &access.role(role)))
                .await
                .map(|_| ()),
            &what,
        );
        println!("{:<8} {what}", format!("{got:?}"));
        if got != Refused {
            failures.push(format!("{what}: expected Refused, got {got:?}"));
        }
    }
    println!(
        "{} statements and {} connections probed",
        SQL_PROBES.len(),
        CONNECT_PROBES.len()
    );
    assert!(
        failures.is_empty(),
        "privileges wrong:\n{}",
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_sees_and_writes_only_its_own_inbox_rows() {
    let pipeline = Pipeline::fresh("inbox_rls").await;
    let access = &pipeline.access;
    // The runtime keys inbox rows by projector name.
    // The search projector's row, written by the owner (as a real search
    // projector would have).
    sqlx::query(
        "INSERT INTO inbox (consumer, event_id, aggregate_id, aggregate_version) \
         VALUES ($1, gen_random_uuid(), gen_random_uuid(), 1)",
    )
    .bind("search-projector")
    .execute(&pipeline.read.pool)
    .await
    .expect("owner writes an inbox row");
    let count = "SELECT count(*) FROM inbox WHERE consumer = $1";
    let insert = "INSERT INTO inbox (consumer, event_id, aggregate_id, aggregate_version) \
                  VALUES ($1, gen_random_uuid(), gen_random_uuid(), 1)";

    let mut summary =
        connect(&access.url_as(&pipeline.read.url, &access.role("summary_projector")))
            .await
            .expect("summary projector connects");
    let seen: i64 = sqlx::query_scalar(count)
        .bind("search-projector")
        .fetch_one(&mut summary)
        .await
        .expect("summary projector reads the inbox");
    assert_eq!(
        seen, 0,
        "the summary projector sees the search projector's inbox rows"
    );
    let mut tx = summary.begin().await.expect("begin");
    let marked = sqlx::query(insert)
        .bind("search-projector")
        .execute(&mut *tx)
        .await
        .map(|_| ());
    assert_eq!(
        outcome(
            marked,
            "summary projector marking a search projector's event as processed"
        ),
        Refused,
        "the summary projector could make the search projector skip an event"
    );
    tx.rollback().await.expect("rollback");
    let mut tx = summary.begin().await.expect("begin");
    sqlx::query(insert)
        .bind("summary-projector")
        .execute(&mut *tx)
        .await
        .expect("the summary projector records its own events");
    tx.rollback().await.expect("rollback");

    let mut search = connect(&access.url_as(&pipeline.read.url, &access.role("search_projector")))
        .await
        .expect("search projector connects");
    let own: i64 = sqlx::query_scalar(count)
        .bind("search-projector")
        .fetch_one(&mut search)
        .await
        .expect("search projector reads its inbox");
    assert_eq!(
        own, 1,
        "the search projector does not see its own inbox row"
    );
}

/// (Redis user suffix, command and arguments with `{p}` for the key
/// prefix, expectation)
const REDIS_PROBES: &[(&str, &[&str], Expect)] = &[
    ("query", &["HGETALL", "{p}order:x"], Allowed),
    ("query", &["SET", "{p}order:x", "v"], Refused),
    ("query", &["HSET", "{p}order:x", "status", "paid"], Refused),
    ("query", &["DEL", "{p}order:x"], Refused),
    ("query", &["PUBLISH", "{p}status-changes", "{}"], Refused),
    ("query", &["HGETALL", "elsewhere:order:x"], Refused),
    ("query", &["KEYS", "*"], Refused),
    // A script runs with its caller's rights: no writing through EVAL.
    (
        "query",
        &[
            "EVAL",
            "return redis.call('SET', KEYS[1], 'x')",
            "1",
            "{p}order:x",
        ],
        Refused,
    ),
    (
        "query",
        &[
            "EVAL",
            "return redis.call('HGET', KEYS[1], 'status')",
            "1",
            "{p}order:x",
        ],
        Allowed,
    ),
    ("query", &["GET", "{p}status:generation"], Allowed),
    ("query", &["FLUSHALL"], Refused),
    (
        "status_projector",
        &["HSET", "{p}order:x", "status", "paid"],
        Allowed,
    ),
    (
        "status_projector",
        &["HGET", "{p}order:x", "status"],
        Allowed,
    ),
    (
        "status_projector",
        &["PUBLISH", "{p}status-changes", "{}"],
        Allowed,
    ),
    (
        "status_projector",
        &["HSET", "elsewhere:order:x", "status", "paid"],
        Refused,
    ),
    (
        "status_projector",
        &["PUBLISH", "elsewhere:status-changes", "{}"],
        Refused,
    ),
    ("status_projector", &["SET", "{p}order:y", "v"], Refused),
    ("status_projector", &["DEL", "{p}order:x"], Refused),
    ("status_projector", &["CONFIG", "GET", "*"], Refused),
    ("status_projector", &["ACL", "LIST"], Refused),
    ("status_projector", &["FLUSHALL"], Refused),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_users_are_confined_to_their_commands_and_keys() {
    let pipeline = Pipeline::fresh("redis_acl").await;
    let access = &pipeline.access;
    let mut failures = Vec::new();
    for (user, args, expected) in REDIS_PROBES {
        let url = access.url_as(&orderflow_testkit::redis_url(), &access.role(user));
        let client = redis::Client::open(url.as_str()).expect("redis url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("{user} cannot log in to Redis: {e}"));
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("{p}", &pipeline.prefix))
            .collect();
        let mut command = redis::cmd(&args[0]);
        command.arg(&args[1..]);
        let what = format!("{user}: {}", args.join(" "));
        let got = match command.query_async::<redis::Value>(&mut conn).await {
            Ok(_) => Allowed,
            Err(e) if e.code() == Some("NOPERM") => Refused,
            // What Redis 7.0 answers when a script's command is not allowed.
            Err(e) if e.to_string().contains("can't run this command") => Refused,
            Err(e) => panic!("{what}: neither allowed nor refused by the ACL: {e}"),
        };
        println!("{:<8} {what}", format!("{got:?}"));
        if got != *expected {
            failures.push(format!("{what}: expected {expected:?}, got {got:?}"));
        }
    }
    let wrong = access.url_as(&orderflow_testkit::redis_url(), &access.role("query"));
    let wrong = wrong.replace(&access.password, "not-the-password");
    let refused = redis::Client::open(wrong.as_str())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await;
    assert!(
        refused.is_err(),
        "Redis accepted the query user with a wrong password"
    );
    assert!(
        failures.is_empty(),
        "Redis ACLs wrong:\n{}",
        failures.join("\n")
    );
}
