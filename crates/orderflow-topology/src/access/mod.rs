//! Least privilege: one Postgres role and, where a service uses Redis, one
//! Redis ACL user per service, with only the rights its job needs.
//!
//! Every service used to connect as the owner of both databases, so a bug or
//! a stolen credential in any of them could rewrite the write model or drop
//! a read model. `orderctl setup` now creates a login role per service and
//! grants it exactly its tables (table-level grants, so columns added by
//! later migrations are covered; default privileges where the role's intent
//! covers every future table: the command service on the write model, the
//! query service reading everything). The projectors share the inbox and
//! held-events tables, keyed by projector name, so row-level security keeps
//! each projector's role to its own rows. Migrations still run as
//! the owner that runs setup. Passwords come from settings (environment or
//! a mounted secret); a role whose password is not set keeps the one it has.
//!
//! Names are `<ROLE_PREFIX><service>`, so environments (and tests) sharing
//! one Postgres server or one Redis never share a role.

mod postgres;
mod redis;

use orderflow_service::Secret;
use orderflow_service::stores::redis::RedisArgs;
use sqlx::PgPool;

use crate::{Result, Step};

/// A service that gets an identity of its own in the stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// `order-command`: read-write on the write model.
    Command,
    /// `outbox-relay`: the outbox tables only (`outbox`, `outbox_published`).
    Relay,
    /// `summary-projector`: `order_summary` and its own inbox rows.
    SummaryProjector,
    /// `search-projector`: its own inbox rows (the index is the engine's).
    SearchProjector,
    /// `status-projector`: its own inbox rows; a Redis user that writes.
    StatusProjector,
    /// `order-query`: read-only on the read DB, and on the write DB for
    /// `consistency=strong`; a Redis user that reads.
    Query,
}

impl Service {
    /// Every service, in the order setup reports them.
    pub const ALL: [Self; 6] = [
        Self::Command,
        Self::Relay,
        Self::SummaryProjector,
        Self::SearchProjector,
        Self::StatusProjector,
        Self::Query,
    ];

    /// The `consumer` of a projector's inbox and held-event rows (the
    /// runtime scopes them by projector name, whatever its consumer group).
    pub fn inbox_consumer(self) -> Option<&'static str> {
        match self {
            Self::SummaryProjector => Some("summary-projector"),
            Self::SearchProjector => Some("search-projector"),
            Self::StatusProjector => Some("status-projector"),
            _ => None,
        }
    }

    /// The part of the role and user name after the prefix.
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Command => "command",
            Self::Relay => "relay",
            Self::SummaryProjector => "summary_projector",
            Self::SearchProjector => "search_projector",
            Self::StatusProjector => "status_projector",
            Self::Query => "query",
        }
    }
}

/// Who gets which role, and with which password.
#[derive(Debug, Clone, clap::Args)]
pub struct AccessSettings {
    /// Prefix of every Postgres role and Redis user setup creates
    /// (`<prefix>command`, `<prefix>relay`, ...): lowercase letters, digits
    /// and `_`.
    #[arg(
        long = "role-prefix",
        env = "ROLE_PREFIX",
        default_value = "orderflow_",
        value_parser = parse_prefix
    )]
    pub prefix: String,
    /// Postgres password of the command service's role.
    #[arg(long = "command-db-password", env = "COMMAND_DB_PASSWORD")]
    pub command_db_password: Option<Secret>,
    /// Postgres password of the relay's role.
    #[arg(long = "relay-db-password", env = "RELAY_DB_PASSWORD")]
    pub relay_db_password: Option<Secret>,
    /// Postgres password of the summary projector's role.
    #[arg(
        long = "summary-projector-db-password",
        env = "SUMMARY_PROJECTOR_DB_PASSWORD"
    )]
    pub summary_db_password: Option<Secret>,
    /// Postgres password of the search projector's role.
    #[arg(
        long = "search-projector-db-password",
        env = "SEARCH_PROJECTOR_DB_PASSWORD"
    )]
    pub search_db_password: Option<Secret>,
    /// Postgres password of the status projector's role.
    #[arg(
        long = "status-projector-db-password",
        env = "STATUS_PROJECTOR_DB_PASSWORD"
    )]
    pub status_db_password: Option<Secret>,
    /// Postgres password of the query service's role (both databases).
    #[arg(long = "query-db-password", env = "QUERY_DB_PASSWORD")]
    pub query_db_password: Option<Secret>,
    /// Redis password of the status projector's user; unset: the user is
    /// left as it is.
    #[arg(
        long = "status-projector-redis-password",
        env = "STATUS_PROJECTOR_REDIS_PASSWORD"
    )]
    pub status_redis_password: Option<Secret>,
    /// Redis password of the query service's user; unset: the user is left
    /// as it is.
    #[arg(long = "query-redis-password", env = "QUERY_REDIS_PASSWORD")]
    pub query_redis_password: Option<Secret>,
    /// Redis, reached as a user that may run `ACL SETUSER`, and the key
    /// prefix the two Redis users are confined to.
    #[command(flatten)]
    pub redis: RedisArgs,
}

impl AccessSettings {
    /// The Postgres role (and Redis user) name of `service`.
    pub fn role(&self, service: Service) -> String {
        format!("{}{}", self.prefix, service.suffix())
    }

    /// The configured Postgres password of `service`'s role.
    pub fn db_password(&self, service: Service) -> Option<&Secret> {
        match service {
            Service::Command => self.command_db_password.as_ref(),
            Service::Relay => self.relay_db_password.as_ref(),
            Service::SummaryProjector => self.summary_db_password.as_ref(),
            Service::SearchProjector => self.search_db_password.as_ref(),
            Service::StatusProjector => self.status_db_password.as_ref(),
            Service::Query => self.query_db_password.as_ref(),
        }
    }
}

fn parse_prefix(value: &str) -> std::result::Result<String, String> {
    let valid = value.len() <= 40
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !value.starts_with(|c: char| c.is_ascii_digit());
    if valid {
        Ok(value.to_owned())
    } else {
        Err("use at most 40 of a-z, 0-9 and _, not starting with a digit".to_owned())
    }
}

/// Creates or updates every role, grant, policy and Redis user; applying it
/// twice changes nothing, and a grant that is no longer wanted is revoked.
pub async fn apply(
    write_db: &PgPool,
    read_db: &PgPool,
    settings: &AccessSettings,
) -> Result<Vec<Step>> {
    let mut steps = vec![
        postgres::grant_write(write_db, settings).await?,
        postgres::grant_read(read_db, settings).await?,
    ];
    steps.extend(redis::set_users(settings).await?);
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_plain_identifiers() {
        assert!(parse_prefix("orderflow_").is_ok());
        assert!(parse_prefix("t_abc123_").is_ok());
        assert!(parse_prefix("Orderflow").is_err());
        assert!(parse_prefix("a\"; DROP ROLE x; --").is_err());
        assert!(parse_prefix("1x").is_err());
    }
}
