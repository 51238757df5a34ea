//! `cargo bench -p projector-suite --bench rebuild`: the rebuild rates of
//! the summary table and the status cache, from the write model and by
//! replay from Kafka, each next to its store's raw bulk rate measured in the
//! same run (stack up):
//!
//! - summary from the write model: `BENCH_ORDERS` seeded orders rebuilt into
//!   the shadow table and swapped in, vs `INSERT … SELECT` of the same rows
//!   into a table like it;
//! - summary and status by replay: the projector suite's event sequence for
//!   `BENCH_ORDERS` orders produced to a fresh topic and replayed;
//! - status from the write model vs pipelined `HSET` of the same entries;
//! - search by replay (`rebuild search --from kafka`: the replay into a new
//!   index, the live index standing still, the alias swap) of the same
//!   topic vs raw `_bulk` of the documents it made (1,000 per request,
//!   external versions, refresh off) into a fresh index.
//!
//! Rates are orders per second (the replay's events per second too).

#![allow(clippy::print_stdout)] // the figures are the output

use std::time::{Duration, Instant};

use orderflow_ops::rebuild::{self, KafkaSource, SearchRebuild, Source, progress::Silent};
use orderflow_ops::seed::{SeedPlan, seed};
use orderflow_readstore::search::{SearchProjection, index};
use orderflow_readstore::status::StatusProjection;
use orderflow_testkit::{fresh_read_database, fresh_topic, fresh_write_database, kafka_config};
use projector_suite::events::{messages, sequence};
use tokio_util::sync::CancellationToken;

fn orders() -> u32 {
    std::env::var("BENCH_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000)
}

fn rate(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(1e-6)
}

#[tokio::main]
async fn main() {
    let n = orders();
    let token = CancellationToken::new();
    let write = fresh_write_database("bench_rebuild_write").await;
    let read = fresh_read_database("bench_rebuild_read").await;
    let plan = SeedPlan {
        orders: i64::from(n),
        lines_per_order: 3,
        customers: None,
        products: 1_000,
        days: 30,
        chunk: 10_000,
        jobs: 2,
        tag: None,
    };
    seed(&write.pool, &plan).await.expect("seed");
    println!("rebuild bench: {n} orders");

    // Summary from the write model (the live table starts empty).
    let r = rebuild::rebuild_summary(
        &write.pool,
        &read.pool,
        &Source::WriteModel,
        1000,
        &Silent,
        &token,
    )
    .await
    .expect("summary rebuild");
    println!(
        "summary  write-model  {:>9.0} orders/s   ({} orders in {:.2} s, locked {} ms)",
        r.rate(),
        r.filled,
        r.elapsed.as_secs_f64(),
        r.locked_for.as_millis()
    );
    sqlx::query("CREATE TABLE bulk_copy (LIKE order_summary INCLUDING ALL)")
        .execute(&read.pool)
        .await
        .expect("copy table");
    let started = Instant::now();
    let copied = sqlx::query("INSERT INTO bulk_copy SELECT * FROM order_summary")
        .execute(&read.pool)
        .await
        .expect("insert select")
        .rows_affected();
    println!(
        "summary  raw INSERT…SELECT {:>6.0} rows/s     (same rows, same indexes)",
        rate(copied, started.elapsed())
    );

    // Status from the write model, and pipelined HSET of the same entries.
    let prefix = format!("{}:", orderflow_testkit::unique_name("bench_rebuild"));
    let status = StatusProjection::new(orderflow_testkit::redis_client(), prefix.clone());
    let r = rebuild::rebuild_status(
        &write.pool,
        &read.pool,
        &status,
        &Source::WriteModel,
        1000,
        &Silent,
        &token,
    )
    .await
    .expect("status rebuild");
    println!(
        "status   write-model  {:>9.0} orders/s   ({} orders in {:.2} s)",
        r.rate(),
        r.filled,
        r.elapsed.as_secs_f64()
    );
    let client = orderflow_testkit::redis_client();
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.cmd("HSET")
                .arg(format!("{prefix}raw:{i}"))
                .arg("status")
                .arg("paid")
                .arg("version")
                .arg(2)
                .arg("updated_at")
                .arg("2026-12-01T00:00:00Z")
                .ignore();
        }
        let () = pipe.query_async(&mut conn).await.expect("hset");
    }
    println!(
        "status   raw pipelined HSET {:>6.0} keys/s",
        rate(u64::from(n), started.elapsed())
    );

    // By replay: the suite's sequence on a fresh topic, into fresh stores.
    let events = sequence(n);
    let topic = fresh_topic("bench-rebuild", 6).await;
    projector_suite::produce_bulk(&topic, &messages(&events)).await;
    let read2 = fresh_read_database("bench_rebuild_read2").await;
    for (model, projector) in [
        ("summary", "summary-projector"),
        ("status", "status-projector"),
    ] {
        let source = Source::Kafka(KafkaSource {
            config: kafka_config(),
            topic: topic.clone(),
            // A group that never committed: the copy only has to reach the
            // high watermarks.
            live_group: format!("{projector}-bench-{topic}"),
        });
        let started = Instant::now();
        match model {
            "summary" => {
                rebuild::rebuild_summary(&write.pool, &read2.pool, &source, 1000, &Silent, &token)
                    .await
                    .map(|_| ())
            }
            _ => {
                let status = StatusProjection::new(
                    orderflow_testkit::redis_client(),
                    format!("{}:", orderflow_testkit::unique_name("bench_rebuild_k")),
                );
                rebuild::rebuild_status(
                    &write.pool,
                    &read2.pool,
                    &status,
                    &source,
                    1000,
                    &Silent,
                    &token,
                )
                .await
                .map(|_| ())
            }
        }
        .expect("replay rebuild");
        let elapsed = started.elapsed();
        println!(
            "{model:<8} kafka        {:>9.0} orders/s   ({:.0} events/s, {} events in {:.2} s)",
            rate(u64::from(n), elapsed),
            rate(events.len() as u64, elapsed),
            events.len(),
            elapsed.as_secs_f64()
        );
    }

    // Search by replay of the same topic, beside raw `_bulk` of its documents.
    let client = orderflow_testkit::search_client().await;
    let alias = orderflow_testkit::fresh_index_name("bench_rebuild_search");
    index::ensure(&client, &alias).await.expect("index");
    let source = Source::Kafka(KafkaSource {
        config: kafka_config(),
        topic: topic.clone(),
        live_group: format!("search-projector-bench-{topic}"),
    });
    let target = SearchRebuild {
        client: client.clone(),
        alias: alias.clone(),
        keep_old: false,
        batch: 1000,
    };
    let r =
        rebuild::rebuild_search_from(&write.pool, &read2.pool, &target, &source, &Silent, &token)
            .await
            .expect("search rebuild");
    println!(
        "search   kafka        {:>9.0} orders/s   ({:.0} events/s, {} events in {:.2} s, still {} ms)",
        rate(u64::from(n), r.elapsed),
        rate(r.replayed, r.elapsed),
        r.replayed,
        r.elapsed.as_secs_f64(),
        r.still_for.as_millis()
    );
    let mut ids: Vec<uuid::Uuid> = events.iter().map(|e| e.aggregate_id).collect();
    ids.sort();
    ids.dedup();
    let rebuilt = SearchProjection {
        client: client.clone(),
        alias: alias.clone(),
    };
    let mut docs = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(1000) {
        docs.extend(rebuilt.load(chunk).await.expect("mget").into_values());
    }
    let raw_index = format!("{alias}_raw");
    index::create(&client, &raw_index, None)
        .await
        .expect("raw index");
    index::set_refresh(&client, &raw_index, "-1")
        .await
        .expect("refresh off");
    let raw = SearchProjection {
        client: client.clone(),
        alias: raw_index.clone(),
    };
    let started = Instant::now();
    for chunk in docs.chunks(1000) {
        raw.backfill(chunk).await.expect("bulk");
    }
    println!(
        "search   raw _bulk    {:>9.0} docs/s     ({} documents, 1,000 per request)",
        rate(docs.len() as u64, started.elapsed()),
        docs.len()
    );
    for i in [alias.clone() + "_v2", raw_index] {
        index::delete(&client, &i).await.expect("delete");
    }
}
