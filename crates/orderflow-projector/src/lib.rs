//! The projector runtime shared by the three read-model projectors.
//!
//! It owns everything that makes a projector safe under redelivery, reordering
//! and poison messages: the consumer loop, the inbox `(consumer, event_id)`,
//! the version guard, retries with backoff, dead-lettering and offset commits
//! that follow durable effects. A projector supplies only how one batch of
//! events changes its store.

use orderflow_service::Readiness;
use orderflow_service::stores::kafka::{self, KafkaArgs};
use orderflow_service::stores::postgres::{self, ReadDbArgs};

/// Settings every projector has.
#[derive(Debug, Clone, clap::Args)]
pub struct ProjectorArgs {
    /// Read database: holds the projector's inbox and checkpoints.
    #[command(flatten)]
    pub read_db: ReadDbArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

impl ProjectorArgs {
    /// Readiness checks for what every projector needs: its read database
    /// (inbox) and Kafka. Projectors add the check of their own store.
    pub fn readiness(&self, name: &str) -> anyhow::Result<Readiness> {
        let pool = postgres::pool(&self.read_db.url, self.read_db.max_connections, name)?;
        let kafka_probe = kafka::prober(&self.kafka, name)?;
        Ok(Readiness::new()
            .check("postgres", move || postgres::probe(pool.clone()))
            .check("kafka", move || {
                let probe = kafka_probe.clone();
                async move { probe.probe().await }
            }))
    }
}
