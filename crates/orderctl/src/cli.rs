//! The command line: the subcommands and the settings groups they share.
//!
//! Kept apart from what the commands do so `--help` reads in one place and
//! a new subcommand is one variant here plus one file in `commands/`.

use clap::{Parser, Subcommand, ValueEnum};
use orderflow_service::CommonArgs;
use orderflow_service::stores::kafka::{KafkaArgs, default_dlq_topic};
use orderflow_service::stores::postgres::ReadDbArgs;
use orderflow_service::stores::redis::RedisArgs;
use orderflow_service::stores::search::SearchArgs;

use crate::commands::{backfill, dlq, lag, outbox, rebuild, reconcile, seed, setup, status, trace};
use crate::token;

/// What `--help` says about exit statuses; [`crate::output::exit`] keeps to it.
const EXIT_CODES: &str = "\
Exit status:
  0  done; the answer is \"in order\"
  1  failed (the message on stderr says why)
  2  usage: unknown command, flag or value
  3  the answer is \"not in order\": reconcile or status found drift,
     trace found the event not visible everywhere
  4  a dependency could not be reached; stderr names it and the setting
     that points at it (e.g. WRITE_DATABASE_URL)

Output: tables for people; --json prints one JSON document on stdout
instead (shapes in the README, Operations). Colour only on a terminal,
never with NO_COLOR set. Logs go to stderr.";

/// `orderctl`'s arguments: the shared settings and one subcommand.
#[derive(Debug, Parser)]
#[command(name = "orderctl", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Print the answer as one JSON document on stdout instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Every subcommand; each variant's arguments live beside its code.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create what the system needs before any service starts: both
    /// databases' migrations, the events topic and the dead-letter topic
    /// (partitions, replication and retention from settings), and each
    /// service's Postgres role and Redis user (README, Security). Safe to
    /// repeat; refuses, naming it, a topic that has fewer partitions than
    /// configured. `scripts/run`, compose and the Kubernetes Job run it.
    Setup(setup::SetupArgs),
    /// Apply pending schema migrations to the write database only (part of
    /// `setup`).
    Migrate(setup::MigrateArgs),
    /// Generate orders, lines, customers and products straight into the
    /// write database, then backfill the read models with them.
    Seed(seed::SeedArgs),
    /// Fill the read models from the write model, never over a newer
    /// version; safe beside the live projectors and to repeat.
    Backfill(backfill::BackfillArgs),
    /// Compare every read model with the write model and report drift:
    /// orders missing, behind, ahead, different, or unknown to the write
    /// model. Each run is recorded in the read database (`orderctl
    /// status` shows the last). Exits with status 3 while drift remains.
    Reconcile(reconcile::ReconcileArgs),
    /// Rebuild a read model beside the live one and swap it in without
    /// stopping anything: the summary into a shadow table, the status cache
    /// into a new key generation, the search index into a new index under
    /// its alias; each from the write model or, with `--from kafka`, by
    /// replay. A rebuild that was stopped is carried on by the next run.
    Rebuild(rebuild::RebuildArgs),
    /// Where is this order or event? The write model, its outbox rows, the
    /// relay, each projector's inbox, held rows, store version and lag, and
    /// the dead letters, with a verdict line on top. Exits 0 when the order
    /// (or event) is visible everywhere, 3 otherwise.
    Trace(trace::TraceArgs),
    /// How far behind everything is: the outbox backlog, and each
    /// projector's lag per partition in events and seconds (the age of the
    /// oldest event it has not committed), from the committed offsets.
    Lag(lag::LagArgs),
    /// Is everything in order? Each read model's last drift check (when,
    /// what it found), the outbox backlog and each projector's lag. Exits 3
    /// when the last check of a read model left drift.
    Status(status::StatusArgs),
    /// The outbox rows the relay parked because Kafka can never take them
    /// (each holds its order's later rows back).
    Outbox(outbox::OutboxArgs),
    /// Mint a bearer token for the APIs from the local HS256 secret
    /// (AUTH_HS256_SECRET), e.g. `orderctl token --role staff --subject ada`.
    Token(token::TokenArgs),
    /// The dead-letter topic: events a projector gave up on.
    Dlq(dlq::DlqArgs),
}

/// The dead-letter topic's name, defaulting to the projectors' derivation.
#[derive(Debug, clap::Args)]
pub struct DlqTopicArg {
    /// Dead-letter topic (default: `<EVENTS_TOPIC>.dlq`, as the projectors').
    #[arg(long, env = "DLQ_TOPIC")]
    pub dlq_topic: Option<String>,
}

impl DlqTopicArg {
    /// The configured topic, or the one the projectors derive from `kafka`.
    pub fn resolve(&self, kafka: &KafkaArgs) -> String {
        self.dlq_topic
            .clone()
            .unwrap_or_else(|| default_dlq_topic(&kafka.events_topic))
    }
}

/// The projectors' consumer groups (the same settings as order-query's).
#[derive(Debug, clap::Args)]
pub struct GroupArgs {
    #[arg(long, env = "SUMMARY_GROUP", default_value = "summary-projector")]
    pub summary_group: String,
    #[arg(long, env = "SEARCH_GROUP", default_value = "search-projector")]
    pub search_group: String,
    #[arg(long, env = "STATUS_GROUP", default_value = "status-projector")]
    pub status_group: String,
}

impl GroupArgs {
    /// (projector name, consumer group) for each projector.
    pub fn pairs(&self) -> Vec<(String, String)> {
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
pub enum ReadModel {
    Summary,
    Search,
    Status,
}

/// The read stores a fill or a check works on, and its batch size.
#[derive(Debug, clap::Args)]
pub struct FillArgs {
    #[command(flatten)]
    pub read_db: ReadDbArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(flatten)]
    pub search: SearchArgs,
    /// Read models to fill or check (default: all three).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "summary,search,status"
    )]
    pub only: Vec<ReadModel>,
    /// Orders per batch.
    #[arg(long, default_value_t = 1000)]
    pub batch: i64,
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }
}
