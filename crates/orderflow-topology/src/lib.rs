//! The system's topology as code: what must exist before any service runs.
//!
//! A system started by hand once had no dead-letter topic (the broker does
//! not auto-create topics), so one poison record stopped every read model
//! while every test passed on topics the tests had made for themselves. So
//! there is one definition of the topology, here, and every way of standing
//! the system up goes through it: `orderctl setup` (which `scripts/run`, the
//! compose file and the Kubernetes Job run) and the test kit's fixtures,
//! which differ only in the names they pass.
//!
//! It applies the write database's migrations (`orderflow-writemodel`), the
//! read database's (`orderflow-projector`: inboxes, held events, the order
//! summary) and creates the events topic and the dead-letter topic, refusing
//! a topic that exists with fewer partitions than configured. Applying it
//! twice changes nothing. [`access`] then gives every service its own
//! Postgres role and Redis user with only the rights it needs.
//!
//! May depend on the schema crates and the service shell's Kafka settings;
//! no service depends on it except through `orderctl`.

pub mod access;
pub mod topics;

use sqlx::PgPool;

pub use topics::{TopicSettings, TopicSpec, TopicState};

/// Why the topology could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A database's migrations failed (or the database is unreachable).
    #[error("{database} database: {source}")]
    Migrate {
        database: &'static str,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// Redis refused or did not answer (creating the ACL users).
    #[error("redis: {0}")]
    Redis(String),
    /// Kafka refused or did not answer.
    #[error("kafka: {0}")]
    Kafka(String),
    /// Both URLs point at one database: the two migration histories would
    /// share `_sqlx_migrations` and collide.
    #[error(
        "WRITE_DATABASE_URL and READ_DATABASE_URL point at the same database ({0}); \
         the write and read models need a database each"
    )]
    SameDatabase(String),
    /// A database could not be asked who it is.
    #[error("{database} database: {source}")]
    Database {
        database: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// A topic exists with fewer partitions than configured.
    #[error(
        "topic {topic} has {actual} partitions but {wanted} are configured; \
         add partitions to the topic (kafka-topics --alter) or lower the setting"
    )]
    TooFewPartitions {
        topic: String,
        actual: i32,
        wanted: i32,
    },
}

/// `Result` with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What `apply` found or did, one line per part, for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A database's migrations: how many were pending and are now applied.
    Migrated {
        database: &'static str,
        applied: usize,
        total: usize,
    },
    /// A topic and what was done about it.
    Topic { spec: TopicSpec, state: TopicState },
    /// The service roles of a database, created and granted their rights.
    Roles {
        database: &'static str,
        roles: Vec<String>,
    },
    /// A Redis ACL user: set to its rights, or left alone because no
    /// password is configured for it.
    RedisUser { user: String, set: bool },
    /// The users set above written to the server's ACL file (`ACL SAVE`),
    /// or not, because the server runs without one and keeps them in memory
    /// only, until it restarts.
    RedisUsersSaved { to_file: bool },
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Migrated {
                database,
                applied,
                total,
            } => write!(
                f,
                "{database} database: {applied} migration(s) applied, {total} in all"
            ),
            Self::Topic { spec, state } => match state {
                TopicState::Created => write!(
                    f,
                    "topic {}: created ({} partitions, replication {}, retention.ms {})",
                    spec.name, spec.partitions, spec.replication, spec.retention_ms
                ),
                TopicState::Exists { partitions } => {
                    write!(f, "topic {}: exists ({partitions} partitions)", spec.name)
                }
            },
            Self::Roles { database, roles } => write!(
                f,
                "{database} database: roles {} granted their rights",
                roles.join(", ")
            ),
            Self::RedisUser { user, set: true } => write!(f, "redis user {user}: rights set"),
            Self::RedisUser { user, set: false } => {
                write!(f, "redis user {user}: skipped (no password configured)")
            }
            Self::RedisUsersSaved { to_file: true } => {
                write!(f, "redis users saved to the server's ACL file")
            }
            Self::RedisUsersSaved { to_file: false } => write!(
                f,
                "redis users NOT persisted: the server has no ACL file (aclfile), so a restart \
                 drops them; run setup again after one, or give Redis an aclfile"
            ),
        }
    }
}

/// Applies the write database's migrations.
pub async fn migrate_write(pool: &PgPool) -> Result<Step> {
    migrate(&orderflow_writemodel::MIGRATOR, pool, "write").await
}

/// Applies the read database's migrations.
pub async fn migrate_read(pool: &PgPool) -> Result<Step> {
    migrate(&orderflow_projector::MIGRATOR, pool, "read").await
}

async fn migrate(
    migrator: &sqlx::migrate::Migrator,
    pool: &PgPool,
    database: &'static str,
) -> Result<Step> {
    let migrated = |source| Error::Migrate { database, source };
    let before = applied_count(pool).await;
    migrator.run(pool).await.map_err(migrated)?;
    let after = applied_count(pool).await;
    Ok(Step::Migrated {
        database,
        applied: after.saturating_sub(before),
        total: migrator.iter().count(),
    })
}

/// Migrations recorded as applied; 0 before the first run made the table.
async fn applied_count(pool: &PgPool) -> usize {
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .map_or(0, |n| usize::try_from(n).unwrap_or(0))
}

/// Everything: both databases, then every topic in `topics`.
pub async fn apply(
    write_db: &PgPool,
    read_db: &PgPool,
    kafka: &rdkafka::ClientConfig,
    topics: &[TopicSpec],
) -> Result<Vec<Step>> {
    let (write, read) = (
        identity(write_db, "write").await?,
        identity(read_db, "read").await?,
    );
    if write == read {
        return Err(Error::SameDatabase(write));
    }
    let mut steps = vec![migrate_write(write_db).await?, migrate_read(read_db).await?];
    steps.extend(topics::ensure_all(kafka, topics).await?);
    Ok(steps)
}

/// Which database on which server a pool reaches.
async fn identity(pool: &PgPool, database: &'static str) -> Result<String> {
    let (name, system): (String, String) = sqlx::query_as(
        "SELECT current_database()::text, \
                coalesce(host(inet_server_addr()), 'local') || ':' || \
                coalesce(inet_server_port()::text, current_setting('port'))",
    )
    .fetch_one(pool)
    .await
    .map_err(|source| Error::Database { database, source })?;
    Ok(format!("{name} on server {system}"))
}
