//! Each service's own credentials, as `orderctl setup` makes them for a
//! pipeline: a role prefix and passwords of the pipeline's own, and the
//! URLs every service is started with, so every system test runs the
//! services with only their grants and proves those grants suffice.

/// The pipeline's role prefix and the passwords `orderctl setup` is given.
#[derive(Debug, Clone)]
pub struct Access {
    /// `ROLE_PREFIX`: `t_<name>_<hex>_`, unique per pipeline.
    pub prefix: String,
    /// One random password for every role and user of this pipeline (the
    /// local Postgres trusts loopback, Redis checks it).
    pub password: String,
}

/// The settings `orderctl setup` reads for the roles, one password each.
const PASSWORD_SETTINGS: [&str; 8] = [
    "COMMAND_DB_PASSWORD",
    "RELAY_DB_PASSWORD",
    "SUMMARY_PROJECTOR_DB_PASSWORD",
    "SEARCH_PROJECTOR_DB_PASSWORD",
    "STATUS_PROJECTOR_DB_PASSWORD",
    "QUERY_DB_PASSWORD",
    "STATUS_PROJECTOR_REDIS_PASSWORD",
    "QUERY_REDIS_PASSWORD",
];

impl Access {
    /// A fresh prefix and password for the pipeline `name`.
    pub fn fresh(name: &str) -> Self {
        Self {
            prefix: format!("{}_", orderflow_testkit::unique_name(name)),
            password: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    /// The role (and Redis user) of `suffix` (`command`, `relay`,
    /// `summary_projector`, ...).
    pub fn role(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// What `orderctl setup` needs to create the roles.
    pub fn setup_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("ROLE_PREFIX", self.prefix.clone())];
        env.extend(PASSWORD_SETTINGS.map(|name| (name, self.password.clone())));
        env
    }

    /// `url` (Postgres or Redis) logging in as `role` with the password.
    pub fn url_as(&self, url: &str, role: &str) -> String {
        with_user(url, role, &self.password)
    }

    /// The store URLs service `name` runs with: its own role on each
    /// database it uses, its own Redis user. Databases a service does not
    /// use get its role too, so a service that tried them would be refused.
    /// `orderctl` keeps the owner's URLs.
    pub fn service_env(
        &self,
        name: &str,
        write_url: &str,
        read_url: &str,
        redis_url: &str,
    ) -> Vec<(&'static str, String)> {
        let suffix = match name {
            "order-command" => "command",
            "outbox-relay" => "relay",
            "summary-projector" => "summary_projector",
            "search-projector" => "search_projector",
            "status-projector" => "status_projector",
            "order-query" => "query",
            _ => return Vec::new(),
        };
        let role = self.role(suffix);
        let mut env = vec![
            ("WRITE_DATABASE_URL", self.url_as(write_url, &role)),
            ("READ_DATABASE_URL", self.url_as(read_url, &role)),
        ];
        if matches!(suffix, "status_projector" | "query") {
            env.push(("REDIS_URL", self.url_as(redis_url, &role)));
        }
        env
    }
}

/// `url` with its user info replaced by `user:password`.
pub fn with_user(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let host = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    format!("{scheme}://{user}:{password}@{host}")
}

#[cfg(test)]
mod tests {
    use super::with_user;

    #[test]
    fn user_info_is_replaced_or_added() {
        assert_eq!(
            with_user("postgres://orderflow@127.0.0.1:5432/db?x=1", "r", "p"),
            "postgres://r:p@127.0.0.1:5432/db?x=1"
        );
        assert_eq!(
            with_user("redis://127.0.0.1:6379", "u", "p"),
            "redis://u:p@127.0.0.1:6379"
        );
    }
}
