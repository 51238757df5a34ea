//! `orderctl rebuild summary|status|search [--from write-model|kafka]`: a
//! read model rebuilt beside the live one and swapped in without stopping
//! anything (the jobs are in `orderflow_ops::rebuild`).

use std::process::ExitCode;

use orderflow_ops::rebuild::{self, KafkaSource, Source};
use orderflow_readstore::status::StatusProjection;
use orderflow_readstore::summary::shadow::Shadow;
use orderflow_service::stores::kafka::KafkaArgs;
use orderflow_service::stores::postgres::{ReadDbArgs, WriteDbArgs};
use orderflow_service::stores::redis::RedisArgs;
use orderflow_service::stores::search::SearchArgs;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::cli::GroupArgs;
use crate::output::{self, Format};
use crate::wiring;

/// The read model to rebuild.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Model {
    Summary,
    Status,
    Search,
}

/// Where the rebuild reads the orders from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum From {
    /// The write model: one read per order, the fastest.
    WriteModel,
    /// The events topic from its earliest offset, through the projection.
    Kafka,
}

/// Settings of `orderctl rebuild`.
#[derive(Debug, clap::Args)]
pub struct RebuildArgs {
    /// The read model to rebuild.
    #[arg(value_enum)]
    model: Model,
    /// Where to read the orders from.
    #[arg(long, value_enum, default_value = "write-model")]
    from: From,
    /// Drop what a stopped rebuild of this model left (shadow table, key
    /// generation or half-filled index, and a replay's inbox scope) and
    /// start afresh, instead of carrying it on.
    #[arg(long)]
    discard: bool,
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
    #[command(flatten)]
    groups: GroupArgs,
    /// Orders (or replayed events) per batch.
    #[arg(long, default_value_t = 1000)]
    batch: i64,
    /// Search only: keep the old index after the swap (delete it by hand later).
    #[arg(long)]
    keep_old: bool,
}

/// The progress reporter, stopping the rebuild for good once its position
/// reaches `ORDERCTL_TEST_HOLD_AT`: how the resume tests hold a rebuild at a
/// known point (everything before it durable) to `kill -9` it there. Unset,
/// it only passes positions on.
struct Hold {
    inner: Box<dyn rebuild::Progress>,
    at: Option<u64>,
}

impl Hold {
    fn around(inner: Box<dyn rebuild::Progress>) -> Box<dyn rebuild::Progress> {
        let at = std::env::var("ORDERCTL_TEST_HOLD_AT")
            .ok()
            .and_then(|v| v.parse().ok());
        Box::new(Self { inner, at })
    }
}

impl rebuild::Progress for Hold {
    fn phase(&self, name: &str, total: u64) {
        self.inner.phase(name, total);
    }
    fn position(&self, done: u64) {
        self.inner.position(done);
        if self.at.is_some_and(|at| done >= at) {
            // Straight to stderr, not through the log: the test waits for it.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("orderctl.rebuild held by ORDERCTL_TEST_HOLD_AT at {done}");
            }
            loop {
                std::thread::park();
            }
        }
    }
    fn finish(&self, message: &str) {
        self.inner.finish(message);
    }
}

/// Rebuilds the model the arguments name.
pub async fn run(
    args: RebuildArgs,
    format: Format,
    token: &CancellationToken,
) -> anyhow::Result<ExitCode> {
    let write = wiring::write_pool(&args.write_db, 4).await?;
    let progress = Hold::around(rebuild::progress::for_stderr());
    let source = match args.from {
        From::WriteModel => Source::WriteModel,
        From::Kafka => {
            let live_group = match args.model {
                Model::Summary => args.groups.summary_group.clone(),
                Model::Status => args.groups.status_group.clone(),
                Model::Search => args.groups.search_group.clone(),
            };
            Source::Kafka(KafkaSource {
                config: wiring::kafka_config(&args.kafka).await?,
                topic: args.kafka.events_topic.clone(),
                live_group,
            })
        }
    };
    let answer = match args.model {
        Model::Summary => {
            let read = wiring::read_pool(&args.read_db, 4).await?;
            if args.discard {
                Shadow::discard(&read).await?;
                rebuild::replay::discard_scope(&read, rebuild::summary::SCOPE, source.kafka())
                    .await?;
            }
            let r = rebuild::rebuild_summary(&write, &read, &source, args.batch, &*progress, token)
                .await?;
            json!({
                "model": "summary", "source": r.source, "resumed": r.resumed,
                "filled": r.filled, "per_second": r.rate().round(),
                "caught_up_before_lock": r.caught_up_before_lock,
                "caught_up_under_lock": r.caught_up_under_lock,
                "live_ahead_of_source": r.live_ahead_of_source, "rows": r.rows,
                "locked_ms": r.locked_for.as_millis() as u64,
                "seconds": r.elapsed.as_secs_f64(),
            })
        }
        Model::Status => {
            let read = wiring::read_pool(&args.read_db, 4).await?;
            let status = StatusProjection::new(
                wiring::redis_client(&args.redis).await?,
                args.redis.key_prefix.clone(),
            );
            if args.discard {
                status.discard_rebuild().await?;
                rebuild::replay::discard_scope(&read, rebuild::status::SCOPE, source.kafka())
                    .await?;
            }
            let r = rebuild::rebuild_status(
                &write, &read, &status, &source, args.batch, &*progress, token,
            )
            .await?;
            json!({
                "model": "status", "source": r.source, "resumed": r.resumed,
                "filled": r.filled, "per_second": r.rate().round(),
                "from_generation": r.from, "to_generation": r.to,
                "caught_up": r.caught_up, "deleted": r.deleted,
                "seconds": r.elapsed.as_secs_f64(),
            })
        }
        Model::Search => {
            let read = wiring::read_pool(&args.read_db, 4).await?;
            let client = wiring::search_client(&args.search).await?;
            if args.discard {
                rebuild::discard_search(&read, &client, &args.search.alias, source.kafka()).await?;
            }
            let target = rebuild::SearchRebuild {
                client,
                alias: args.search.alias.clone(),
                keep_old: args.keep_old,
                batch: args.batch,
            };
            let r =
                rebuild::rebuild_search_from(&write, &read, &target, &source, &*progress, token)
                    .await?;
            // From the write model, the copy alone (as before); by replay,
            // the whole rebuild (the replay is the copy).
            let (filled, seconds) = if args.from == From::Kafka {
                (r.replayed, r.elapsed)
            } else {
                (r.fill.orders, r.fill.elapsed)
            };
            json!({
                "model": "search", "source": r.source, "resumed": r.resumed,
                "from": r.from, "to": r.to, "filled": filled,
                "per_second": (filled as f64 / seconds.as_secs_f64().max(1e-3)).round(),
                "changed_during_fill": r.before_swap.0, "changed_after_swap": r.after_swap.0,
                "caught_up_still": r.caught_up_still,
                "caught_up_after_swap": r.caught_up_after_swap,
                "still_ms": r.still_for.as_millis() as u64,
                "deleted_old": r.deleted_old, "seconds": seconds.as_secs_f64(),
                "total_seconds": r.elapsed.as_secs_f64(),
            })
        }
    };
    match format {
        Format::Json => output::print_json(&answer),
        Format::Table => output::print_lines(&[format!(
            "{} rebuilt from {}: {} {} in {:.1} s ({}/s){}",
            answer["model"].as_str().unwrap_or_default(),
            answer["source"].as_str().unwrap_or_default(),
            answer["filled"],
            if args.from == From::Kafka {
                "events"
            } else {
                "orders"
            },
            answer["seconds"].as_f64().unwrap_or_default(),
            answer["per_second"],
            if answer["resumed"] == true {
                ", carried on from a stopped run"
            } else {
                ""
            },
        )]),
    }
    Ok(ExitCode::SUCCESS)
}
