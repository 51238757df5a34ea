//! The one mapping from an authentication or limit refusal to HTTP: 401
//! with `WWW-Authenticate: Bearer` (RFC 6750), 403, 429 with `Retry-After`.
//! Details are coarse on purpose and never repeat the token.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::Problem;

/// Why a request is refused before any handler runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No `Authorization: Bearer` header.
    #[error("no bearer token")]
    Missing,
    /// A token that does not verify; the reason is safe to show.
    #[error("invalid token: {0}")]
    Invalid(&'static str),
    /// A valid token whose role may not do this.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// Over the subject's rate or concurrency limit.
    #[error("too many requests: {what}")]
    TooMany {
        retry_after_secs: u64,
        what: &'static str,
    },
}

impl Rejection {
    pub fn invalid(reason: &'static str) -> Self {
        Self::Invalid(reason)
    }

    /// The reason a jsonwebtoken error gives, coarsened.
    pub fn from_jwt(err: &jsonwebtoken::errors::Error) -> Self {
        use jsonwebtoken::errors::ErrorKind as K;
        Self::Invalid(match err.kind() {
            K::ExpiredSignature => "the token has expired",
            K::ImmatureSignature => "the token is not valid yet",
            K::InvalidIssuer => "the token is from another issuer",
            K::InvalidAudience => "the token is for another audience",
            K::MissingRequiredClaim(_) => "the token lacks a required claim (exp, iss, aud, sub)",
            K::InvalidSignature => "the token's signature does not verify",
            K::InvalidAlgorithm => "no key for the token's algorithm",
            _ => "the token is malformed",
        })
    }
}

impl Rejection {
    /// The problem answered to the client.
    pub fn to_problem(&self) -> Problem {
        use StatusCode as S;
        match self.clone() {
            Self::Missing => Problem::new(S::UNAUTHORIZED, "unauthorized", "Unauthorized")
                .detail("send a bearer token: Authorization: Bearer <token>")
                .header(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"orderflow\""),
                ),
            Self::Invalid(reason) => Problem::new(S::UNAUTHORIZED, "unauthorized", "Unauthorized")
                .detail(reason)
                .header(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"orderflow\", error=\"invalid_token\""),
                ),
            Self::Forbidden(reason) => {
                Problem::new(S::FORBIDDEN, "forbidden", "Forbidden").detail(reason)
            }
            Self::TooMany {
                retry_after_secs,
                what,
            } => Problem::new(
                S::TOO_MANY_REQUESTS,
                "too-many-requests",
                "Too many requests",
            )
            .detail(what)
            .header(header::RETRY_AFTER, HeaderValue::from(retry_after_secs)),
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        self.to_problem().into_response()
    }
}
