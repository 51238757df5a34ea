//! Bearer tokens (JWT) on the HTTP APIs: who is acting, in which role, and
//! how often they may ask.
//!
//! [`Auth::layer`] puts one middleware in front of an API router (not the
//! ops endpoints, which stay open): it reads `Authorization: Bearer`,
//! verifies the token against the configured keys ([`keys`]), counts the
//! request against the subject's rate ([`limits`]), bounds the request's
//! time, and hands the handlers an [`Actor`]. Refusals are problem+json
//! ([`error`]). What each role may do is the services' own table; this
//! module only says who the caller is.
//!
//! Without a key the service refuses to start, unless `AUTH_DISABLED=true`
//! says explicitly that every caller is anonymous staff (tests and local
//! tools that predate tokens); that is logged as a warning at start.

pub mod error;
pub mod keys;
pub mod limits;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod token;

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;

pub use error::Rejection;
pub use keys::{KeyError, KeySet};
pub use limits::{RateLimit, Slot, Slots};
pub use token::{Actor, Claims, Role, mint_hs256};

use crate::Problem;
use crate::config::{Secret, parse_duration};

/// Authentication settings of an HTTP API.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthArgs {
    /// HS256 secret (at least 32 bytes) tokens are verified with; for local
    /// runs, where `orderctl token` mints with the same secret.
    #[arg(long = "auth-hs256-secret", env = "AUTH_HS256_SECRET")]
    pub hs256_secret: Option<Secret>,
    /// JWKS file of RS256/ES256 public keys (each entry with its `alg`);
    /// re-read every AUTH_JWKS_RELOAD, so keys rotate without a restart.
    #[arg(long = "auth-jwks-file", env = "AUTH_JWKS_FILE")]
    pub jwks_file: Option<PathBuf>,
    /// How often the JWKS file is re-read.
    #[arg(long = "auth-jwks-reload", env = "AUTH_JWKS_RELOAD", default_value = "30s", value_parser = parse_duration)]
    pub jwks_reload: Duration,
    /// The `iss` every token must carry.
    #[arg(long = "auth-issuer", env = "AUTH_ISSUER", default_value = "orderflow")]
    pub issuer: String,
    /// The `aud` every token must carry.
    #[arg(
        long = "auth-audience",
        env = "AUTH_AUDIENCE",
        default_value = "orderflow"
    )]
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf`.
    #[arg(long = "auth-leeway", env = "AUTH_LEEWAY", default_value = "30s", value_parser = parse_duration)]
    pub leeway: Duration,
    /// Accept every caller as anonymous staff, without a token (never in
    /// production; logged as a warning at start).
    #[arg(long = "auth-disabled", env = "AUTH_DISABLED", default_value_t = false, action = clap::ArgAction::Set)]
    pub disabled: bool,
    /// Requests per second one token subject may make.
    #[arg(long, env = "RATE_LIMIT_PER_SECOND", default_value = "50")]
    pub rate_per_second: NonZeroU32,
    /// Requests one subject may make at once above its rate.
    #[arg(long, env = "RATE_LIMIT_BURST", default_value = "100")]
    pub rate_burst: NonZeroU32,
    /// Longest a request may take (reading its body included), then 503.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,
}

/// Why authentication cannot be set up; the service refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "no token verification key: set AUTH_HS256_SECRET (local runs) or AUTH_JWKS_FILE, \
         or AUTH_DISABLED=true to accept every caller as anonymous staff"
    )]
    NoKeys,
    #[error("AUTH_DISABLED=true together with a key is ambiguous; set one of them")]
    DisabledWithKeys,
    #[error(transparent)]
    Keys(#[from] KeyError),
}

/// Verifies callers; cheap to clone.
#[derive(Debug, Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `None` when authentication is disabled.
    keys: Option<RwLock<Arc<KeySet>>>,
    rate: RateLimit,
    timeout: Duration,
    args: Option<AuthArgs>,
}

impl Auth {
    /// Authentication as configured; an error when no key is configured
    /// (unless explicitly disabled) or a key cannot be read.
    pub fn from_args(args: &AuthArgs) -> Result<Self, AuthError> {
        let has_keys = args.hs256_secret.is_some() || args.jwks_file.is_some();
        let keys = match (args.disabled, has_keys) {
            (true, true) => return Err(AuthError::DisabledWithKeys),
            (true, false) => {
                tracing::warn!(
                    "auth.disabled AUTH_DISABLED=true: every caller is anonymous staff, \
                     with no token and no rate limit; never run this in production"
                );
                None
            }
            (false, false) => return Err(AuthError::NoKeys),
            (false, true) => Some(RwLock::new(Arc::new(load(args)?))),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                keys,
                rate: RateLimit::new(args.rate_per_second, args.rate_burst),
                timeout: args.request_timeout,
                args: Some(args.clone()),
            }),
        })
    }

    /// No tokens: every caller is anonymous staff (in-process benchmarks).
    pub fn disabled() -> Self {
        Self {
            inner: Arc::new(Inner {
                keys: None,
                rate: RateLimit::new(NonZeroU32::MAX, NonZeroU32::MAX),
                timeout: Duration::from_secs(60),
                args: None,
            }),
        }
    }

    /// Puts authentication, the subject's rate limit and the request
    /// timeout in front of every route of `router` (its fallbacks too).
    pub fn layer(&self, router: Router) -> Router {
        router
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                authenticate,
            ))
            .layer(SetSensitiveRequestHeadersLayer::new([
                header::AUTHORIZATION,
            ]))
    }

    /// Who a request's `Authorization` header names.
    pub fn actor(&self, headers: &axum::http::HeaderMap) -> Result<Actor, Rejection> {
        let Some(keys) = &self.inner.keys else {
            return Ok(Actor::anonymous_staff());
        };
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(if headers.contains_key(header::AUTHORIZATION) {
                Rejection::invalid("send one Authorization header")
            } else {
                Rejection::Missing
            });
        };
        let token = bearer(value)?;
        let keys = keys.read().unwrap_or_else(|e| e.into_inner()).clone();
        keys.verify(token)
    }

    /// Re-reads the JWKS file every `AUTH_JWKS_RELOAD` and swaps the keys in
    /// when it changed (a file that cannot be read keeps the old keys and
    /// is logged); also forgets idle subjects' rate buckets. Returns when
    /// `token` is cancelled.
    pub async fn maintain(self, token: CancellationToken) -> anyhow::Result<()> {
        let interval = self
            .inner
            .args
            .as_ref()
            .map_or(Duration::from_secs(30), |a| a.jwks_reload);
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = self.jwks_text();
        loop {
            tokio::select! {
                () = token.cancelled() => return Ok(()),
                _ = tick.tick() => {}
            }
            self.inner.rate.forget_idle();
            let (Some(args), Some(keys)) = (&self.inner.args, &self.inner.keys) else {
                continue;
            };
            let current = self.jwks_text();
            if current == last {
                continue;
            }
            match load(args) {
                Ok(set) => {
                    tracing::info!(keys = set.len(), "auth.keys reloaded");
                    *keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
                    last = current;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "auth.keys reload failed; keeping the keys in use");
                }
            }
        }
    }

    fn jwks_text(&self) -> Option<Vec<u8>> {
        let path = self.inner.args.as_ref()?.jwks_file.as_ref()?;
        std::fs::read(path).ok()
    }
}

fn load(args: &AuthArgs) -> Result<KeySet, KeyError> {
    KeySet::load(
        args.hs256_secret.as_ref().map(|s| s.expose().as_bytes()),
        args.jwks_file.as_deref(),
        &args.issuer,
        &args.audience,
        args.leeway,
    )
}

/// The token of `Bearer <token>` (scheme case-insensitive, RFC 6750).
fn bearer(value: &HeaderValue) -> Result<&str, Rejection> {
    if value.len() > keys::MAX_TOKEN_BYTES + 16 {
        return Err(Rejection::invalid("the token is too large"));
    }
    let value = value
        .to_str()
        .map_err(|_| Rejection::invalid("the Authorization header is not visible ASCII"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or(Rejection::invalid("expected Authorization: Bearer <token>"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Rejection::invalid("expected Authorization: Bearer <token>"));
    }
    Ok(token.trim())
}

async fn authenticate(State(auth): State<Auth>, mut request: Request, next: Next) -> Response {
    let actor = match auth.actor(request.headers()) {
        Ok(actor) => actor,
        Err(rejection) => {
            tracing::info!(reason = ?rejection, "auth.rejected");
            return rejection.into_response();
        }
    };
    if auth.inner.keys.is_some()
        && let Err(rejection) = auth.inner.rate.check(&actor.principal())
    {
        return rejection.into_response();
    }
    request.extensions_mut().insert(actor);
    match tokio::time::timeout(auth.inner.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "Request timed out",
        )
        .detail(format!(
            "the request took longer than {} s; retry (with the same Idempotency-Key)",
            auth.inner.timeout.as_secs()
        ))
        .header(header::RETRY_AFTER, HeaderValue::from(1u64))
        .into_response(),
    }
}

/// The acting identity the middleware verified. A route outside
/// [`Auth::layer`] has none, and is refused (fails closed).
impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = Rejection;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Actor>()
            .cloned()
            .ok_or(Rejection::Missing)
    }
}

impl Actor {
    /// Forbidden (403) unless this actor's role is one of `roles`.
    pub fn require(&self, roles: &[Role], what: &'static str) -> Result<(), Rejection> {
        if roles.contains(&self.role()) {
            Ok(())
        } else {
            Err(Rejection::Forbidden(what))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_authorization_header_is_marked_sensitive() {
        use tower::ServiceExt as _;
        // What a log line or span that printed the request's headers would show.
        let router = Router::new()
            .route(
                "/",
                axum::routing::get(|headers: axum::http::HeaderMap| async move {
                    format!("{headers:?}")
                }),
            )
            .layer(SetSensitiveRequestHeadersLayer::new([
                header::AUTHORIZATION,
            ]));
        let request = axum::http::Request::builder()
            .uri("/")
            .header(header::AUTHORIZATION, "Bearer secret-token-value")
            .body(axum::body::Body::empty())
            .expect("request");
        let response = router.oneshot(request).await.expect("served");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        let printed = String::from_utf8_lossy(&body);
        assert!(!printed.contains("secret-token-value"), "{printed}");
        assert!(printed.contains("Sensitive"), "{printed}");
    }
}
