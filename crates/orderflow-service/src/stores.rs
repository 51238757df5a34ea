//! Connection settings and readiness probes for the four engines.
//!
//! Each engine is behind a cargo feature so a service links only the clients
//! it uses. Connections are made lazily where the client allows: a service
//! whose dependency is down still starts, serves `/healthz`, and reports the
//! dependency in `/readyz` until it comes back.

#[cfg(feature = "postgres")]
pub mod postgres {
    //! Postgres pools for the write and read databases.
    use std::time::Duration;

    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    use sqlx::{ConnectOptions as _, PgPool};

    use crate::Secret;

    /// The write database (normalised model, outbox, idempotency records).
    #[derive(Debug, Clone, clap::Args)]
    pub struct WriteDbArgs {
        /// Postgres URL of the write database.
        #[arg(
            id = "write_database_url",
            long = "write-database-url",
            env = "WRITE_DATABASE_URL",
            default_value = "postgres://orderflow@127.0.0.1:5432/orderflow_write"
        )]
        pub url: Secret,
        /// Maximum connections in the write pool.
        #[arg(
            id = "write_db_max_connections",
            long = "write-db-max-connections",
            env = "WRITE_DB_MAX_CONNECTIONS",
            default_value_t = 16
        )]
        pub max_connections: u32,
    }

    /// The read database (order summaries, projector inboxes and checkpoints).
    #[derive(Debug, Clone, clap::Args)]
    pub struct ReadDbArgs {
        /// Postgres URL of the read database.
        #[arg(
            id = "read_database_url",
            long = "read-database-url",
            env = "READ_DATABASE_URL",
            default_value = "postgres://orderflow@127.0.0.1:5432/orderflow_read"
        )]
        pub url: Secret,
        /// Maximum connections in the read pool.
        #[arg(
            id = "read_db_max_connections",
            long = "read-db-max-connections",
            env = "READ_DB_MAX_CONNECTIONS",
            default_value_t = 16
        )]
        pub max_connections: u32,
    }

    /// How long a pooled connection may sit idle and still be handed out
    /// without a ping. sqlx pings every connection it hands out by default:
    /// a round trip of its own, a third of PlaceOrder's and half of a read
    /// by id. A connection used this recently is as good as one just pinged
    /// (the server could close it a moment after the ping all the same);
    /// one idle for longer, as after a restart, is pinged and replaced if
    /// the server closed it. HikariCP's `aliveBypassWindowMs` is the same
    /// idea, with the same 500 ms.
    pub const PING_AFTER_IDLE: Duration = Duration::from_millis(500);

    /// A lazily connecting pool; `application_name` shows in `pg_stat_activity`.
    pub fn pool(
        url: &Secret,
        max_connections: u32,
        application_name: &str,
    ) -> sqlx::Result<PgPool> {
        let options: PgConnectOptions = url
            .expose()
            .parse::<PgConnectOptions>()?
            .application_name(application_name);
        Ok(pool_with(options, max_connections))
    }

    /// A lazily connecting pool on `options`: slow statements logged, a
    /// connection pinged only when it was idle past [`PING_AFTER_IDLE`].
    pub fn pool_with(options: PgConnectOptions, max_connections: u32) -> PgPool {
        let options =
            options.log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
        PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_AFTER_IDLE {
                        // An error closes this connection; the pool opens
                        // another for the caller.
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_lazy_with(options)
    }

    /// Whether `err` says the database cannot take work right now, rather
    /// than that the request was wrong: the connection failed or broke, the
    /// pool timed out, the server is shutting down or starting up
    /// (`57P01`-`57P03`), a connection exception (`08…`), or insufficient
    /// resources (`53…`: disk full, out of memory, too many connections).
    /// A client should see 503 and retry, not 500.
    pub fn unavailable(err: &sqlx::Error) -> bool {
        match err {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                code.starts_with("53") || code.starts_with("08") || code.starts_with("57P")
            }),
            _ => false,
        }
    }

    /// Readiness: the database answers a query.
    pub async fn probe(pool: PgPool) -> Result<(), String> {
        sqlx::query("SELECT 1")
            .execute(&pool)
            .await
            .map(|_| ())
            .map_err(|e| format!("postgres: {e}"))
    }
}

#[cfg(feature = "kafka")]
pub mod kafka {
    //! Kafka client settings.
    use std::sync::Arc;
    use std::time::Duration;

    use rdkafka::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer as _};

    /// Where Kafka is and which topic carries the order events.
    #[derive(Debug, Clone, clap::Args)]
    pub struct KafkaArgs {
        /// Comma-separated bootstrap servers.
        #[arg(
            long = "kafka-brokers",
            env = "KAFKA_BROKERS",
            default_value = "127.0.0.1:9092"
        )]
        pub brokers: String,
        /// The order events topic.
        #[arg(
            long = "events-topic",
            env = "EVENTS_TOPIC",
            default_value = "orders.events.v1"
        )]
        pub events_topic: String,
        /// How this client authenticates and encrypts (passed to librdkafka).
        #[command(flatten)]
        pub security: KafkaSecurityArgs,
    }

    /// TLS and SASL for the Kafka clients, handed to librdkafka as they
    /// are (its `security.protocol`, `sasl.*`, `ssl.ca.location`), so each
    /// service can be its own Kafka principal with its own ACLs. Unset: the
    /// local stack's plaintext listener.
    #[derive(Debug, Clone, Default, clap::Args)]
    pub struct KafkaSecurityArgs {
        /// `security.protocol`: plaintext, ssl, sasl_plaintext or sasl_ssl.
        #[arg(long = "kafka-security-protocol", env = "KAFKA_SECURITY_PROTOCOL")]
        pub protocol: Option<String>,
        /// `sasl.mechanism`: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, ...
        #[arg(long = "kafka-sasl-mechanism", env = "KAFKA_SASL_MECHANISM")]
        pub sasl_mechanism: Option<String>,
        /// `sasl.username`: this service's Kafka principal.
        #[arg(long = "kafka-sasl-username", env = "KAFKA_SASL_USERNAME")]
        pub sasl_username: Option<String>,
        /// `sasl.password`.
        #[arg(long = "kafka-sasl-password", env = "KAFKA_SASL_PASSWORD")]
        pub sasl_password: Option<crate::Secret>,
        /// `ssl.ca.location`: the CA bundle that signed the brokers' certificates.
        #[arg(long = "kafka-ssl-ca-location", env = "KAFKA_SSL_CA_LOCATION")]
        pub ssl_ca_location: Option<String>,
    }

    impl KafkaSecurityArgs {
        /// Sets what is configured on `config`; leaves the rest to librdkafka.
        pub fn apply(&self, config: &mut ClientConfig) {
            let settings = [
                ("security.protocol", self.protocol.as_deref()),
                ("sasl.mechanism", self.sasl_mechanism.as_deref()),
                ("sasl.username", self.sasl_username.as_deref()),
                (
                    "sasl.password",
                    self.sasl_password.as_ref().map(|s| s.expose()),
                ),
                ("ssl.ca.location", self.ssl_ca_location.as_deref()),
            ];
            for (key, value) in settings {
                if let Some(value) = value {
                    config.set(key, value);
                }
            }
        }
    }

    impl KafkaArgs {
        /// A client config with the bootstrap servers, a client id and the
        /// security settings set.
        pub fn client_config(&self, client_id: &str) -> ClientConfig {
            let mut config = ClientConfig::new();
            config
                .set("bootstrap.servers", &self.brokers)
                .set("client.id", client_id);
            self.security.apply(&mut config);
            config
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_client_gets_the_security_settings_and_unset_ones_stay_unset() {
            let security = KafkaSecurityArgs {
                protocol: Some("sasl_ssl".into()),
                sasl_mechanism: Some("SCRAM-SHA-512".into()),
                sasl_username: Some("outbox-relay".into()),
                sasl_password: Some(crate::Secret::new("pw")),
                ssl_ca_location: None,
            };
            let args = KafkaArgs {
                brokers: "broker:9093".into(),
                events_topic: "orders.events.v1".into(),
                security,
            };
            let config = args.client_config("outbox-relay");
            assert_eq!(config.get("security.protocol"), Some("sasl_ssl"));
            assert_eq!(config.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
            assert_eq!(config.get("sasl.username"), Some("outbox-relay"));
            assert_eq!(config.get("sasl.password"), Some("pw"));
            assert_eq!(config.get("ssl.ca.location"), None);
        }
    }

    /// The dead-letter topic's name when `DLQ_TOPIC` is not set: the events
    /// topic's name plus `.dlq`. `orderctl setup` creates it under this name
    /// and the projectors and `orderctl dlq` use it, so the three agree.
    pub fn default_dlq_topic(events_topic: &str) -> String {
        format!("{events_topic}.dlq")
    }

    /// Partition count of `topic`, `None` when the cluster does not have it.
    /// The metadata call blocks, so it runs off the async runtime.
    pub async fn topic_partitions(
        config: &ClientConfig,
        topic: &str,
        timeout: Duration,
    ) -> Result<Option<i32>, String> {
        let config = config.clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = config
                .create()
                .map_err(|e| format!("creating a metadata client: {e}"))?;
            let metadata = consumer
                .fetch_metadata(Some(&topic), timeout)
                .map_err(|e| format!("kafka: {e}"))?;
            Ok(metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
                .map(|t| t.partitions().len() as i32))
        })
        .await
        .map_err(|e| format!("metadata task: {e}"))?
    }

    /// A readiness probe: the cluster answers a metadata request.
    ///
    /// The consumer is created once and shared; librdkafka reconnects by itself.
    pub fn prober(args: &KafkaArgs, client_id: &str) -> rdkafka::error::KafkaResult<KafkaProbe> {
        let consumer: BaseConsumer = args.client_config(client_id).create()?;
        Ok(KafkaProbe {
            consumer: Arc::new(consumer),
        })
    }

    /// See [`prober`].
    #[derive(Clone)]
    pub struct KafkaProbe {
        consumer: Arc<BaseConsumer>,
    }

    impl std::fmt::Debug for KafkaProbe {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("KafkaProbe")
        }
    }

    impl KafkaProbe {
        /// Asks the cluster whether `topic` exists and has partitions with a
        /// leader, so it can be written (blocking call, run off the runtime).
        pub async fn probe_topic(&self, topic: &str) -> Result<(), String> {
            let consumer = self.consumer.clone();
            let topic = topic.to_owned();
            tokio::task::spawn_blocking(move || {
                let metadata = consumer
                    .fetch_metadata(Some(&topic), Duration::from_millis(1500))
                    .map_err(|e| format!("kafka: {e}"))?;
                let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
                    return Err(format!(
                        "topic {topic} does not exist; create it with `orderctl setup`"
                    ));
                };
                if let Some(err) = found.error() {
                    return Err(format!(
                        "topic {topic} is not usable ({}); create it with `orderctl setup`",
                        rdkafka::types::RDKafkaErrorCode::from(err)
                    ));
                }
                if found.partitions().is_empty() {
                    return Err(format!("topic {topic} has no partitions"));
                }
                match found.partitions().iter().find(|p| p.leader() < 0) {
                    Some(p) => Err(format!("topic {topic}: partition {} has no leader", p.id())),
                    None => Ok(()),
                }
            })
            .await
            .map_err(|e| format!("kafka probe task: {e}"))?
        }

        /// Asks the cluster for its metadata (blocking call, run off the runtime).
        pub async fn probe(&self) -> Result<(), String> {
            let consumer = self.consumer.clone();
            tokio::task::spawn_blocking(move || {
                consumer
                    .fetch_metadata(None, Duration::from_millis(1500))
                    .map(|_| ())
                    .map_err(|e| format!("kafka: {e}"))
            })
            .await
            .map_err(|e| format!("kafka probe task: {e}"))?
        }
    }
}

#[cfg(feature = "redis")]
pub mod redis {
    //! Redis settings.

    /// Where Redis is.
    #[derive(Debug, Clone, clap::Args)]
    pub struct RedisArgs {
        /// Redis URL.
        #[arg(
            id = "redis_url",
            long = "redis-url",
            env = "REDIS_URL",
            default_value = "redis://127.0.0.1:6379"
        )]
        pub url: crate::Secret,
        /// Prefix of every key this deployment writes (lets environments share a Redis).
        #[arg(
            long = "redis-key-prefix",
            env = "REDIS_KEY_PREFIX",
            default_value = "orderflow:"
        )]
        pub key_prefix: String,
    }

    impl RedisArgs {
        /// A client; it connects only when a connection is asked for.
        pub fn client(&self) -> ::redis::RedisResult<::redis::Client> {
            ::redis::Client::open(self.url.expose())
        }
    }

    /// Readiness: Redis answers PING.
    pub async fn probe(client: ::redis::Client) -> Result<(), String> {
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| format!("redis: {e}"))?;
        ::redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| format!("redis: {e}"))
    }
}

#[cfg(feature = "search")]
pub mod search {
    //! Search engine (Elasticsearch or OpenSearch) settings.
    use elasticsearch::Elasticsearch;
    use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};

    /// Where the search engine is.
    #[derive(Debug, Clone, clap::Args)]
    pub struct SearchArgs {
        /// Base URL of Elasticsearch or OpenSearch.
        #[arg(
            id = "search_url",
            long = "search-url",
            env = "SEARCH_URL",
            default_value = "http://127.0.0.1:9200"
        )]
        pub url: crate::Secret,
        /// Alias the query API reads and the projector writes behind.
        #[arg(long = "search-alias", env = "SEARCH_ALIAS", default_value = "orders")]
        pub alias: String,
    }

    impl SearchArgs {
        /// A client for the configured node.
        pub fn client(&self) -> anyhow::Result<Elasticsearch> {
            let url = self.url.expose().parse()?;
            let transport = TransportBuilder::new(SingleNodeConnectionPool::new(url))
                .disable_proxy()
                .build()?;
            Ok(Elasticsearch::new(transport))
        }
    }

    /// Readiness: the cluster is at least yellow.
    pub async fn probe(client: Elasticsearch) -> Result<(), String> {
        let response = client
            .cluster()
            .health(elasticsearch::cluster::ClusterHealthParts::None)
            .send()
            .await
            .map_err(|e| format!("search: {e}"))?;
        let body: serde_json::Value = response.json().await.map_err(|e| format!("search: {e}"))?;
        match body["status"].as_str() {
            Some("green" | "yellow") => Ok(()),
            other => Err(format!("search: cluster status {other:?}")),
        }
    }
}
