//! The shell every orderflow service runs in.
//!
//! Each service binary is thin: it parses its settings, calls [`telemetry::init`],
//! builds its own router and background tasks, and hands them to [`run`]. What
//! is the same for all of them lives here once, so a fix to shutdown or to the
//! ops endpoints reaches every service:
//!
//! - [`config`]: typed settings from environment variables (with matching
//!   `--flags`), defaults that point at the local stack, secrets that never print;
//! - [`telemetry`]: logs (text or JSON), OTLP trace export when configured,
//!   the Prometheus recorder;
//! - [`ops`]: `/healthz`, `/readyz` (the service's own dependency checks) and
//!   `/metrics`;
//! - [`problem`]: RFC 9457 `application/problem+json` errors;
//! - [`retry`]: the jittered exponential delay every retry loop waits;
//! - [`shutdown`]: SIGTERM/SIGINT to a cancellation token, tasks drained
//!   within a grace period;
//! - `auth` (behind a feature): bearer tokens, the acting identity, per-subject
//!   limits for the HTTP APIs;
//! - `stores` (behind features): connecting to Postgres, Kafka, Redis and the
//!   search engine, each with its readiness probe.

#[cfg(feature = "auth")]
pub mod auth;
pub mod config;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod ops;
pub mod problem;
pub mod retry;
pub mod shutdown;
pub mod stores;
pub mod telemetry;

pub use config::{CommonArgs, Secret};
pub use ops::Readiness;
pub use problem::Problem;
pub use shutdown::{Service, ShutdownSignal};

/// Declares a unit test that checks a clap settings type for conflicting
/// arguments (ids, flags, env names), which clap only reports at run time.
#[macro_export]
macro_rules! settings_test {
    ($settings:ty) => {
        #[cfg(test)]
        #[test]
        fn settings_are_consistent() {
            use ::clap::CommandFactory as _;
            <$settings>::command().debug_assert();
        }
    };
}
