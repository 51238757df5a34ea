//! `orderctl`: the operator's CLI.
//!
//! One binary for the jobs an operator runs by hand or from a Kubernetes Job:
//! the topology (migrations and topics) every deployment applies first,
//! schema migrations alone, a bulk seed for benchmarks, backfill of the read
//! models from the write model, reconciliation of the two, a rebuild of the
//! search index with swap-in, and the dead-letter topic's list and replay.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use orderflow_ops::backfill::{self, Targets};
use orderflow_ops::dlq::{DeadLetter, DeadLetterTopic};
use orderflow_ops::reconcile::{self, ReconcileReport};
use orderflow_ops::seed::{self, SeedPlan};
use orderflow_service::config::parse_duration;
use orderflow_service::stores::kafka::{KafkaArgs, default_dlq_topic};
use orderflow_service::stores::postgres::{self, ReadDbArgs, WriteDbArgs};
use orderflow_service::stores::redis::RedisArgs;
use orderflow_service::stores::search::SearchArgs;
use orderflow_service::{CommonArgs, telemetry};
use orderflow_topology::TopicSettings;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

mod token;

/// `orderctl reconcile`'s exit status when drift remains (errors exit 1).
const DRIFT_EXIT: u8 = 3;

#[derive(Debug, Parser)]
#[command(name = "orderctl", version, about)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create what the system needs before any service starts: both
    /// databases' migrations, the events topic and the dead-letter topic
    /// (partitions, replication and retention from settings), and each
    /// service's Postgres role and Redis user (README, Security). Safe to
    /// repeat; refuses, naming it, a topic that has fewer partitions than
    /// configured. `scripts/run`, compose and the Kubernetes Job run it.
    Setup {
        #[command(flatten)]
        write_db: WriteDbArgs,
        #[command(flatten)]
        read_db: ReadDbArgs,
        #[command(flatten)]
        kafka: KafkaArgs,
        /// Dead-letter topic (default: `<EVENTS_TOPIC>.dlq`, as the projectors').
        #[arg(long, env = "DLQ_TOPIC")]
        dlq_topic: Option<String>,
        #[command(flatten)]
        topics: TopicSettings,
        #[command(flatten)]
        access: orderflow_topology::access::AccessSettings,
    },
    /// Apply pending schema migrations to the write database only (part of
    /// `setup`).
    Migrate {
        #[command(flatten)]
        write_db: WriteDbArgs,
    },
    /// Generate orders, lines, customers and products straight into the
    /// write database, then backfill the read models with them.
    Seed {
        #[command(flatten)]
        write_db: WriteDbArgs,
        #[command(flatten)]
        plan: SeedPlan,
        /// Leave the read models alone (run `orderctl backfill` later).
        #[arg(long)]
        no_backfill: bool,
        #[command(flatten)]
        fill: FillArgs,
    },
    /// Fill the read models from the write model, never over a newer
    /// version; safe beside the live projectors and to repeat.
    Backfill {
        #[command(flatten)]
        write_db: WriteDbArgs,
        #[command(flatten)]
        fill: FillArgs,
        /// Resume after this order id (the last one a stopped run logged).
        #[arg(long)]
        after: Option<Uuid>,
    },
    /// Compare every read model with the write model and report drift:
    /// orders missing, behind, ahead, different, or unknown to the write
    /// model. Exits with status 3 while drift remains.
    Reconcile {
        #[command(flatten)]
        write_db: WriteDbArgs,
        #[command(flatten)]
        fill: FillArgs,
        /// Write the write model's state where a read model differs.
        #[arg(long)]
        repair: bool,
        /// Wait this long before reading suspected drift again, so events
        /// still on their way are not reported.
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        recheck_after: std::time::Duration,
        /// Drifted orders to name per read model.
        #[arg(long, default_value_t = 10)]
        examples: usize,
    },
    /// Rebuild the search index from the write model beside the live one
    /// and swap it in under the alias, without stopping anything.
    Rebuild {
        #[command(flatten)]
        write_db: WriteDbArgs,
        #[command(flatten)]
        search: SearchArgs,
        /// Orders per batch.
        #[arg(long, default_value_t = 1000)]
        batch: i64,
        /// Keep the old index after the swap (delete it by hand later).
        #[arg(long)]
        keep_old: bool,
    },
    /// Where is this order or event? The write model, its outbox rows, the
    /// relay, each projector's inbox, held rows, store version and lag, and
    /// the dead letters, with a verdict line on top. Exits 0 when the order
    /// (or event) is visible everywhere, 3 otherwise.
    Trace {
        /// An order id or an event id.
        id: Uuid,
        #[command(flatten)]
        write_db: WriteDbArgs,
        #[command(flatten)]
        read_db: ReadDbArgs,
        #[command(flatten)]
        redis: RedisArgs,
        #[command(flatten)]
        search: SearchArgs,
        #[command(flatten)]
        kafka: KafkaArgs,
        /// Dead-letter topic (default: `<EVENTS_TOPIC>.dlq`, as the projectors').
        #[arg(long, env = "DLQ_TOPIC")]
        dlq_topic: Option<String>,
        #[command(flatten)]
        groups: GroupArgs,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// How far behind everything is: the outbox backlog, and each
    /// projector's lag per partition in events and seconds (the age of the
    /// oldest event it has not committed), from the committed offsets.
    Lag {
        #[command(flatten)]
        write_db: WriteDbArgs,
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        groups: GroupArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The outbox rows the relay parked because Kafka can never take them
    /// (each holds its order's later rows back).
    Outbox {
        #[command(subcommand)]
        action: OutboxAction,
        #[command(flatten)]
        write_db: WriteDbArgs,
    },
    /// Mint a bearer token for the APIs from the local HS256 secret
    /// (AUTH_HS256_SECRET), e.g. `orderctl token --role staff --subject ada`.
    Token(token::TokenArgs),
    /// The dead-letter topic: events a projector gave up on.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
        #[command(flatten)]
        kafka: KafkaArgs,
        /// Dead-letter topic (default: `<EVENTS_TOPIC>.dlq`, as the projectors').
        #[arg(long, env = "DLQ_TOPIC")]
        dlq_topic: Option<String>,
        /// Consumer group whose offsets mark what was replayed.
        #[arg(long, default_value = "orderctl-dlq-replay")]
        group: String,
        /// Only the dead letters of this projector (e.g. summary-projector).
        #[arg(long)]
        consumer: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum OutboxAction {
    /// Print every parked row: order, version, size, why, and how many of
    /// its order's rows wait behind it.
    List,
    /// Let the relay try parked rows again (after fixing the cause, e.g.
    /// raising the topic's max.message.bytes); a row that still fails is
    /// parked again.
    Redrive {
        /// Only these outbox row ids (from `orderctl outbox list`).
        #[arg(long = "id", required_unless_present = "all")]
        ids: Vec<i64>,
        /// Every parked row.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
enum DlqAction {
    /// Print every dead letter still on the topic, with why and whether it
    /// was replayed.
    List,
    /// Send the dead letters not replayed yet back to the events topic
    /// (after fixing their cause); other projectors' inboxes skip them.
    Replay,
}

/// The projectors' consumer groups (the same settings as order-query's).
#[derive(Debug, clap::Args)]
struct GroupArgs {
    #[arg(long, env = "SUMMARY_GROUP", default_value = "summary-projector")]
    summary_group: String,
    #[arg(long, env = "SEARCH_GROUP", default_value = "search-projector")]
    search_group: String,
    #[arg(long, env = "STATUS_GROUP", default_value = "status-projector")]
    status_group: String,
}

impl GroupArgs {
    /// (projector name, consumer group) for each projector.
    fn pairs(&self) -> Vec<(String, String)> {
        vec![
            (
                orderflow_readstore::summary::NAME.to_owned(),
                self.summary_group.clone(),
            ),
            (
                orderflow_readstore::search::NAME.to_owned(),
                self.search_group.clone(),
            ),
            (
                orderflow_readstore::status::NAME.to_owned(),
                self.status_group.clone(),
            ),
        ]
    }
}

/// A read model `backfill` can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReadModel {
    Summary,
    Search,
    Status,
}

#[derive(Debug, clap::Args)]
struct FillArgs {
    #[command(flatten)]
    read_db: ReadDbArgs,
    #[command(flatten)]
    redis: RedisArgs,
    #[command(flatten)]
    search: SearchArgs,
    /// Read models to fill or check (default: all three).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "summary,search,status"
    )]
    only: Vec<ReadModel>,
    /// Orders per batch.
    #[arg(long, default_value_t = 1000)]
    batch: i64,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let _telemetry = telemetry::init("orderctl", cli.common.log_format)?;
    // Ctrl-C stops a backfill between batches, with the place to resume.
    let token = CancellationToken::new();
    tokio::spawn({
        let token = token.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::warn!("orderctl interrupted; stopping after this batch");
                token.cancel();
            }
        }
    });
    match cli.command {
        Command::Token(args) => token::run(&args)?,
        Command::Setup {
            write_db,
            read_db,
            kafka,
            dlq_topic,
            topics,
            access,
        } => {
            let write = postgres::pool(&write_db.url, 2, "orderctl")?;
            let read = postgres::pool(&read_db.url, 2, "orderctl")?;
            let dlq_topic = dlq_topic.unwrap_or_else(|| default_dlq_topic(&kafka.events_topic));
            let specs = topics.specs(&kafka.events_topic, &dlq_topic);
            let mut steps = orderflow_topology::apply(
                &write,
                &read,
                &kafka.client_config("orderctl"),
                &specs,
            )
            .await
            .with_context(
                || "applying the topology (WRITE_DATABASE_URL, READ_DATABASE_URL, KAFKA_BROKERS)",
            )?;
            steps.extend(
                orderflow_topology::access::apply(&write, &read, &access)
                    .await
                    .context(
                        "giving each service its role (ROLE_PREFIX, *_DB_PASSWORD, REDIS_URL)",
                    )?,
            );
            print_steps(&steps);
        }
        Command::Migrate { write_db } => {
            let pool = migrated_write_pool(&write_db).await?;
            drop(pool);
            tracing::info!("orderctl.migrate write database is up to date");
        }
        Command::Seed {
            write_db,
            plan,
            no_backfill,
            fill,
        } => {
            let pool = migrated_write_pool(&write_db).await?;
            let report = seed::seed(&pool, &plan).await?;
            tracing::info!(
                tag = report.tag,
                orders = report.orders,
                lines = report.lines,
                customers = report.customers,
                products = report.products,
                seconds = report.elapsed.as_secs_f64(),
                "orderctl.seed done"
            );
            if !no_backfill {
                run_backfill(&pool, &fill, None, &token).await?;
            }
        }
        Command::Backfill {
            write_db,
            fill,
            after,
        } => {
            let pool = postgres::pool(&write_db.url, 4, "orderctl")?;
            run_backfill(&pool, &fill, after, &token).await?;
        }
        Command::Reconcile {
            write_db,
            fill,
            repair,
            recheck_after,
            examples,
        } => {
            let pool = postgres::pool(&write_db.url, 4, "orderctl")?;
            let targets = targets(&fill).await?;
            let options = reconcile::Options {
                batch: fill.batch,
                repair,
                recheck_after,
                examples,
            };
            let report = reconcile::reconcile(&pool, &targets, &options, &token).await?;
            print_report(&report);
            anyhow::ensure!(report.complete, "reconcile stopped before the end");
            if report.unresolved() > 0 {
                // An answer, not a failure of the tool: no backtrace.
                tracing::error!(
                    drifted = report.unresolved(),
                    repair,
                    "orderctl.reconcile drift remains{}",
                    if repair { "" } else { "; --repair fixes it" }
                );
                return Ok(ExitCode::from(DRIFT_EXIT));
            }
        }
        Command::Rebuild {
            write_db,
            search,
            batch,
            keep_old,
        } => {
            let pool = postgres::pool(&write_db.url, 4, "orderctl")?;
            let client = search.client()?;
            let report = orderflow_ops::rebuild::rebuild_search(
                &pool,
                &client,
                &search.alias,
                batch,
                keep_old,
                &token,
            )
            .await?;
            tracing::info!(
                alias = search.alias,
                from = ?report.from,
                to = report.to,
                resumed = report.resumed,
                filled = report.fill.search,
                fill_seconds = report.fill.elapsed.as_secs_f64(),
                changed_during_fill = report.before_swap.0,
                changed_after = report.after_swap.0,
                deleted_old = report.deleted_old,
                "orderctl.rebuild done"
            );
        }
        Command::Trace {
            id,
            write_db,
            read_db,
            redis,
            search,
            kafka,
            dlq_topic,
            groups,
            json,
        } => {
            let write = postgres::pool(&write_db.url, 2, "orderctl")?;
            let read = postgres::pool(&read_db.url, 2, "orderctl")?;
            let search = orderflow_readstore::search::SearchProjection {
                client: search.client()?,
                alias: search.alias.clone(),
            };
            let status = orderflow_readstore::status::StatusProjection::new(
                redis.client()?,
                redis.key_prefix,
            );
            let config = kafka.client_config("orderctl");
            let dead_letters = DeadLetterTopic {
                config: config.clone(),
                topic: dlq_topic.unwrap_or_else(|| default_dlq_topic(&kafka.events_topic)),
                group: "orderctl-dlq-replay".to_owned(),
            };
            let projectors = groups.pairs();
            let sources = orderflow_ops::trace::Sources {
                write: &write,
                read: &read,
                search: &search,
                status: &status,
                kafka: &config,
                events_topic: &kafka.events_topic,
                dead_letters: &dead_letters,
                projectors: &projectors,
            };
            let trace = orderflow_ops::trace::trace(&sources, id).await?;
            if json {
                print_json(&trace.to_json());
            } else {
                print_lines(&trace.lines());
            }
            let done = trace.verdict.starts_with("visible everywhere")
                || trace.verdict.starts_with("processed by every projector");
            if !done {
                return Ok(ExitCode::from(DRIFT_EXIT));
            }
        }
        Command::Lag {
            write_db,
            kafka,
            groups,
            json,
        } => {
            let write = postgres::pool(&write_db.url, 2, "orderctl")?;
            let backlog = orderflow_ops::lag::outbox_backlog(&write).await?;
            let config = kafka.client_config("orderctl");
            let mut lags = Vec::new();
            for (_, group) in groups.pairs() {
                lags.push(
                    orderflow_ops::lag::group_lag(&config, &kafka.events_topic, &group).await?,
                );
            }
            if json {
                print_json(&serde_json::json!({
                    "outbox": {"unpublished": backlog.unpublished, "oldest_seconds": backlog.oldest_seconds, "parked": backlog.parked},
                    "groups": lags.iter().map(orderflow_ops::lag::GroupLag::to_json).collect::<Vec<_>>(),
                }));
            } else {
                let mut lines = vec![format!(
                    "outbox: {} unpublished (oldest {:.1} s), {} parked",
                    backlog.unpublished, backlog.oldest_seconds, backlog.parked
                )];
                lines.push(format!(
                    "{:<28} {:>9} {:>10} {:>10} {:>9}",
                    "group", "partition", "committed", "end", "behind"
                ));
                for lag in &lags {
                    for p in &lag.partitions {
                        lines.push(format!(
                            "{:<28} {:>9} {:>10} {:>10} {:>9}  {:.1} s",
                            lag.group,
                            p.partition,
                            p.committed.map_or("-".to_owned(), |c| c.to_string()),
                            p.high_watermark,
                            p.events,
                            p.seconds
                        ));
                    }
                }
                print_lines(&lines);
            }
        }
        Command::Outbox { action, write_db } => {
            let pool = postgres::pool(&write_db.url, 2, "orderctl")?;
            let mut conn = pool
                .acquire()
                .await
                .context("connecting to the write database (WRITE_DATABASE_URL)")?;
            match action {
                OutboxAction::List => {
                    let rows = orderflow_outbox::parked(&mut conn).await?;
                    print_parked(&rows);
                }
                OutboxAction::Redrive { ids, all } => {
                    let ids = (!all).then_some(ids.as_slice());
                    let n = orderflow_outbox::redrive(&mut conn, ids).await?;
                    tracing::info!(
                        rows = n,
                        "orderctl.outbox redriven; the relay sends them next"
                    );
                    print_redriven(n);
                }
            }
        }
        Command::Dlq {
            action,
            kafka,
            dlq_topic,
            group,
            consumer,
        } => {
            let topic = DeadLetterTopic {
                config: kafka.client_config("orderctl"),
                topic: dlq_topic.unwrap_or_else(|| default_dlq_topic(&kafka.events_topic)),
                group,
            };
            dlq(action, &kafka, topic, consumer.as_deref(), &token).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn dlq(
    action: DlqAction,
    kafka: &KafkaArgs,
    topic: DeadLetterTopic,
    consumer: Option<&str>,
    token: &CancellationToken,
) -> anyhow::Result<()> {
    match action {
        DlqAction::List => {
            let letters: Vec<DeadLetter> = topic.list(consumer).await?;
            print_dead_letters(&topic.topic, &letters);
        }
        DlqAction::Replay => {
            let report = topic.replay(&kafka.events_topic, consumer, token).await?;
            tracing::info!(
                replayed = report.replayed,
                skipped = report.skipped,
                complete = report.complete,
                to = kafka.events_topic,
                "orderctl.dlq replay done"
            );
            anyhow::ensure!(report.complete, "replay stopped before the end");
        }
    }
    Ok(())
}

/// Lines on standard output: the command's answer.
#[allow(clippy::print_stdout)]
fn print_lines(lines: &[String]) {
    for line in lines {
        println!("{line}");
    }
}

#[allow(clippy::print_stdout)]
fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// The parked outbox rows on standard output: the command's answer.
#[allow(clippy::print_stdout)]
fn print_parked(rows: &[orderflow_outbox::ParkedRow]) {
    println!("{} parked outbox rows", rows.len());
    for r in rows {
        println!(
            "row {}: {} v{} of order {} (event {}), {} bytes, parked {}, {} behind it: {}",
            r.id,
            r.event_type,
            r.aggregate_version,
            r.aggregate_id,
            r.event_id,
            r.bytes,
            r.parked_at,
            r.waiting,
            r.park_reason.as_deref().unwrap_or("no reason recorded")
        );
    }
}

#[allow(clippy::print_stdout)]
fn print_redriven(rows: u64) {
    println!("{rows} rows re-driven");
}

/// What `setup` found and did, one line per part.
#[allow(clippy::print_stdout)]
fn print_steps(steps: &[orderflow_topology::Step]) {
    for step in steps {
        println!("{step}");
    }
}

/// The dead letters on standard output: they are the command's answer.
#[allow(clippy::print_stdout)]
fn print_dead_letters(topic: &str, letters: &[DeadLetter]) {
    println!("{} dead letters on {topic}", letters.len());
    for l in letters {
        let event = l.event.as_ref().map_or_else(
            || "(unreadable envelope)".to_owned(),
            |e| {
                format!(
                    "{} v{} of order {} (event {})",
                    e.event_type, e.version, e.order_id, e.event_id
                )
            },
        );
        println!(
            "{}:{} {} {} after {} attempts{}: {}",
            l.partition,
            l.offset,
            l.consumer.as_deref().unwrap_or("?"),
            event,
            l.attempts.map_or_else(|| "?".to_owned(), |a| a.to_string()),
            if l.replayed { ", replayed" } else { "" },
            l.reason.as_deref().unwrap_or("no reason given")
        );
    }
}

/// The reconcile report on standard output: it is the command's answer.
#[allow(clippy::print_stdout)]
fn print_report(report: &ReconcileReport) {
    println!(
        "{} orders in the write model, compared in {:.1} s",
        report.orders,
        report.elapsed.as_secs_f64()
    );
    println!(
        "{:<8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>11}",
        "store",
        "checked",
        "missing",
        "behind",
        "ahead",
        "differs",
        "extra",
        "repaired",
        "unrepaired"
    );
    for (name, store) in report.stores() {
        let n = |d| store.drift.get(&d).copied().unwrap_or(0);
        use reconcile::Drift::*;
        println!(
            "{name:<8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>11}",
            store.checked,
            n(Missing),
            n(Behind),
            n(Ahead),
            n(Differs),
            n(Extra),
            store.repaired,
            store.unrepaired
        );
        for (order, drift) in &store.examples {
            println!("  {name}: {order} {}", drift.as_str());
        }
    }
}

async fn migrated_write_pool(write_db: &WriteDbArgs) -> anyhow::Result<sqlx::PgPool> {
    let pool = postgres::pool(&write_db.url, write_db.max_connections.max(4), "orderctl")?;
    orderflow_topology::migrate_write(&pool)
        .await
        .context("applying write-database migrations")?;
    Ok(pool)
}

/// The read models `fill` names, migrated or created where needed.
async fn targets(fill: &FillArgs) -> anyhow::Result<Targets> {
    let mut targets = Targets::default();
    if fill.only.contains(&ReadModel::Summary) {
        let read = postgres::pool(&fill.read_db.url, 4, "orderctl")?;
        orderflow_topology::migrate_read(&read)
            .await
            .context("applying read-database migrations")?;
        targets.summary = Some(read);
    }
    if fill.only.contains(&ReadModel::Search) {
        let client = fill.search.client()?;
        orderflow_readstore::search::index::ensure(&client, &fill.search.alias).await?;
        targets.search = Some(orderflow_readstore::search::SearchProjection {
            client,
            alias: fill.search.alias.clone(),
        });
    }
    if fill.only.contains(&ReadModel::Status) {
        targets.status = Some(orderflow_readstore::status::StatusProjection::new(
            fill.redis.client()?,
            fill.redis.key_prefix.clone(),
        ));
    }
    Ok(targets)
}

async fn run_backfill(
    write: &sqlx::PgPool,
    fill: &FillArgs,
    after: Option<Uuid>,
    token: &CancellationToken,
) -> anyhow::Result<()> {
    let targets = targets(fill).await?;
    let report = backfill::backfill(write, &targets, after, fill.batch, token).await?;
    let last = report.last.map(|id| id.to_string()).unwrap_or_default();
    tracing::info!(
        orders = report.orders,
        summary_rows = report.summary,
        search_documents = report.search,
        status_keys = report.status,
        seconds = report.elapsed.as_secs_f64(),
        last,
        complete = report.complete,
        "orderctl.backfill done"
    );
    anyhow::ensure!(
        report.complete,
        "backfill stopped early; resume with --after {last}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }
}
