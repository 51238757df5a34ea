//! A pooled connection the server has closed (a Postgres restart, a
//! failover, an idle-session timeout, `pg_terminate_backend`) is found out
//! before a request uses it: the pools ping a connection that has been
//! idle longer than a short window, and open a new one if the ping fails.
//! Connections busy within the window go out unpinged, so a loaded service
//! pays no round trip for the check. Both APIs, as real processes.

use std::time::Duration;

use serde_json::json;
use sqlx::Connection as _;
use system_tests::{Pipeline, customer_and_product, post};

/// Requests sent at once, enough to open several of each pool's connections.
const CONCURRENT: usize = 12;

/// Closes every connection `application` holds to the database of `url`,
/// as the server does when it restarts; returns how many there were. Done
/// as the service's own role, which may end its own sessions.
async fn terminate(url: &str, application: &str) -> i64 {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("connect as the service's role");
    let closed = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND usename = current_user \
           AND application_name = $1 AND pid <> pg_backend_pid()) AS t",
    )
    .bind(application)
    .fetch_one(&mut conn)
    .await
    .expect("pg_terminate_backend");
    conn.close().await.ok();
    closed
}

/// The idle time after which the pools ping (`orderflow_service`'s
/// `PING_AFTER_IDLE`), with room to spare: waiting it out is the
/// precondition of the case, not a guess at when something finished.
const PAST_THE_WINDOW: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_server_closed_are_replaced_before_a_request_uses_them() {
    let pipeline = Pipeline::fresh("stale").await;
    let command = pipeline.start("order-command", &[]).await;
    let query = pipeline.start("order-query", &[]).await;
    let http = reqwest::Client::new();
    let base = command.base.clone();
    let (customer, product) = customer_and_product(&http, &base, "stale", 1000).await;
    let place = |n: usize| {
        let (http, base) = (http.clone(), base.clone());
        let body = json!({"customer_id": customer["id"], "lines": [{"product_id": product["id"], "quantity": 1}],
            "shipping_address": {"line1": format!("{n} Main St"), "city": "York", "postal_code": "YO1", "country": "GB"}});
        async move { post(&http, format!("{base}/orders"), body).await }
    };
    let read = |order: String| {
        let (http, base) = (http.clone(), query.base.clone());
        async move {
            let response = http
                .get(format!("{base}/orders/{order}"))
                .send()
                .await
                .expect("request");
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
    };

    for round in 0..2 {
        let placed =
            futures::future::join_all((0..CONCURRENT).map(|n| place(round * 100 + n))).await;
        for (status, reply) in &placed {
            assert_eq!(*status, 201, "round {round}: PlaceOrder: {reply}");
        }
        // Unknown to the read model (no projector runs): a 404 needs a
        // query that reached the database, a stale connection gives 503.
        let reads = futures::future::join_all(
            placed
                .iter()
                .map(|(_, reply)| read(reply["order_id"].as_str().expect("id").to_owned())),
        )
        .await;
        for (status, reply) in &reads {
            assert_eq!(*status, 404, "round {round}: read by id: {reply}");
        }
        if round == 0 {
            let access = &pipeline.access;
            let command = access.url_as(&pipeline.write.url, &access.role("command"));
            let query = access.url_as(&pipeline.read.url, &access.role("query"));
            let closed =
                terminate(&command, "order-command").await + terminate(&query, "order-query").await;
            assert!(closed >= 2, "the services held {closed} connections");
            tokio::time::sleep(PAST_THE_WINDOW).await;
        }
    }
}
