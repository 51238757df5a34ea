//! Typed settings shared by every service.
//!
//! Settings are clap arguments that also read an environment variable, so the
//! same binary is configured by flags on a laptop and by env in Kubernetes,
//! and `--help` is the complete, always-current list. Defaults point at the
//! local stack started by `scripts/stack up`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Settings every service has.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Log format: `text` for people, `json` for machines.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// How long in-flight work may take to finish after SIGTERM before it is aborted.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

/// Parses durations such as `250ms`, `20s`, `5m`, `24h` or `1h 30m`
/// (humantime's syntax); a bare number, an unknown unit or a value that
/// overflows is an error naming the input.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    humantime::parse_duration(input.trim())
        .map_err(|e| format!("`{input}`: {e} (e.g. 250ms, 20s, 5m, 24h)"))
}

/// A value that must not appear in logs, such as a URL with a password.
///
/// `Debug` and `Display` print a placeholder; [`Secret::expose`] is the one
/// explicit way to read it, which keeps every use greppable. The value is
/// held by `secrecy` (zeroed when dropped, so it does not linger in freed
/// memory or a core dump); this type adds what settings need of it: parsing
/// from the environment, `Display`, equality.
#[derive(Clone)]
pub struct Secret(secrecy::SecretString);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(secrecy::SecretString::from(value.into()))
    }

    /// The secret value itself; use only where it is handed to a client.
    pub fn expose(&self) -> &str {
        secrecy::ExposeSecret::expose_secret(&self.0)
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("20").is_err());
        assert!(parse_duration("s").is_err());
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5_400)));
        assert!(parse_duration("3 parsecs").is_err());
        // The hand-written parser multiplied without checking.
        assert!(parse_duration("99999999999999999999h").is_err());
        assert!(parse_duration("18446744073709551615h").is_err());
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("postgres://u:hunter2@h/db");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(s.expose(), "postgres://u:hunter2@h/db");
    }
}
