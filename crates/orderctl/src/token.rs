//! `orderctl token`: mints a bearer token from the local HS256 secret, for
//! trying the APIs and for scripts (`scripts/run` prints two). Production
//! tokens come from the identity provider whose keys are in AUTH_JWKS_FILE;
//! this command cannot mint those.

use std::time::Duration;

use anyhow::Context as _;
use orderflow_service::Secret;
use orderflow_service::auth::{Claims, Role, mint_hs256};
use orderflow_service::config::parse_duration;

/// Settings of `orderctl token` (the issuer, audience and secret the APIs use).
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// customer, staff or service.
    #[arg(long)]
    pub role: Role,
    /// The acting identity: the customer id (a UUID) for a customer token.
    #[arg(long)]
    pub subject: String,
    /// How long the token is valid.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub ttl: Duration,
    /// The secret the APIs verify with.
    #[arg(long = "auth-hs256-secret", env = "AUTH_HS256_SECRET")]
    pub secret: Secret,
    #[arg(long = "auth-issuer", env = "AUTH_ISSUER", default_value = "orderflow")]
    pub issuer: String,
    #[arg(
        long = "auth-audience",
        env = "AUTH_AUDIENCE",
        default_value = "orderflow"
    )]
    pub audience: String,
}

/// Prints one token on stdout (bare, so `$(orderctl token ...)` works;
/// with `--json` as `{"token", "role", "subject", "ttl_seconds"}`).
#[allow(clippy::print_stdout)]
pub fn run(args: &TokenArgs, format: crate::output::Format) -> anyhow::Result<()> {
    let claims = Claims::new(
        &args.subject,
        args.role,
        &args.issuer,
        &args.audience,
        args.ttl,
    );
    // The same check the APIs make, so a token that would be refused is not minted.
    orderflow_service::auth::Actor::from_claims(&claims).map_err(anyhow::Error::msg)?;
    let token =
        mint_hs256(args.secret.expose().as_bytes(), &claims).context("signing the token")?;
    if format == crate::output::Format::Json {
        crate::output::print_json(&serde_json::json!({
            "token": token,
            "role": args.role,
            "subject": args.subject,
            "ttl_seconds": args.ttl.as_secs(),
        }));
    } else {
        println!("{token}");
    }
    Ok(())
}
