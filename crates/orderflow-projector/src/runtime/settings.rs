//! The consumer loop's settings, from the environment.

use std::time::Duration;

use orderflow_service::config::parse_duration;

/// Tuning of the consumer loop.
#[derive(Debug, Clone, clap::Args)]
pub struct RuntimeSettings {
    /// Consumer group; defaults to the projector's name.
    #[arg(long = "consumer-group", env = "CONSUMER_GROUP")]
    pub group: Option<String>,
    /// Dead-letter topic; defaults to `<events topic>.dlq`.
    #[arg(long = "dlq-topic", env = "DLQ_TOPIC")]
    pub dlq_topic: Option<String>,
    /// Most events applied per batch.
    #[arg(
        long = "batch-size",
        env = "PROJECTOR_BATCH_SIZE",
        default_value_t = 500
    )]
    pub batch_size: usize,
    /// How long a batch waits to fill once its first event arrived. Short:
    /// a busy projector batches by itself (what arrives while one batch is
    /// applied is in the next), and at low rates every millisecond of it is
    /// added to commit→visible.
    #[arg(long = "batch-wait", env = "PROJECTOR_BATCH_WAIT", default_value = "5ms", value_parser = parse_duration)]
    pub batch_wait: Duration,
    /// Attempts at an event the store refuses before it is dead-lettered.
    #[arg(
        long = "max-attempts",
        env = "PROJECTOR_MAX_ATTEMPTS",
        default_value_t = 5
    )]
    pub max_attempts: u32,
    /// How long an event may wait for an earlier version before it is parked.
    #[arg(long = "gap-timeout", env = "PROJECTOR_GAP_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub gap_timeout: Duration,
    /// How often held events are retried.
    #[arg(long = "held-retry", env = "PROJECTOR_HELD_RETRY", default_value = "1s", value_parser = parse_duration)]
    pub held_retry: Duration,
    /// Deduplicate through the inbox. Only for measuring its cost: without
    /// it a redelivered event is still caught by the version guard, but an
    /// event id reused for a different version would not be.
    #[arg(long = "inbox", env = "PROJECTOR_INBOX", default_value_t = true, action = clap::ArgAction::Set)]
    pub inbox: bool,
    /// Longest pause between retries of a store that is down.
    #[arg(long = "max-backoff", env = "PROJECTOR_MAX_BACKOFF", default_value = "5s", value_parser = parse_duration)]
    pub max_backoff: Duration,
    /// Newest schema version accepted, below what this build understands:
    /// plays the consumer of an earlier release (`1`: the release before
    /// `OrderPlaced` v2), whose "newer schema" refusal is the same code
    /// path. For the rolling-upgrade test; never set in a deployment.
    #[arg(
        long = "schema-version-cap",
        env = "PROJECTOR_SCHEMA_VERSION_CAP",
        hide = true
    )]
    pub schema_version_cap: Option<u32>,
}

impl RuntimeSettings {
    /// `DLQ_TOPIC`, or the name `orderctl setup` gives it by default.
    pub fn dlq_topic(&self, events_topic: &str) -> String {
        self.dlq_topic
            .clone()
            .unwrap_or_else(|| orderflow_service::stores::kafka::default_dlq_topic(events_topic))
    }
}
