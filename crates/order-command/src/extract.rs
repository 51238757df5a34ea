//! Request extractors that turn raw HTTP into validated inputs, answering
//! every refusal as problem+json through [`ApiError`].

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use sha2::{Digest as _, Sha256};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use uuid::Uuid;

use crate::error::ApiError;

/// Who is acting: the verified bearer token's subject and role (see
/// `orderflow_service::auth`); idempotency keys are scoped by it.
pub use orderflow_service::auth::Actor;

/// Correlation and trace context of the request, carried into every event.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// From `X-Correlation-Id` when it is a UUID, else new.
    pub correlation_id: Uuid,
    /// This request; the causation id of the events it produces.
    pub request_id: Uuid,
    /// W3C trace context to store with the events.
    pub traceparent: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let correlation_id = parts
            .headers
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Uuid::parse_str(v).ok())
            .unwrap_or_else(Uuid::now_v7);
        Ok(Self {
            correlation_id,
            request_id: Uuid::now_v7(),
            traceparent: traceparent(&parts.headers),
        })
    }
}

/// The current span's trace context when traces are exported, else the
/// caller's `traceparent` header passed through unchanged.
fn traceparent(headers: &HeaderMap) -> Option<String> {
    let context = tracing::Span::current().context();
    let mut carrier = std::collections::HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut carrier));
    carrier.remove("traceparent").or_else(|| {
        headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() == 55 && v.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
            .map(str::to_owned)
    })
}

/// A JSON body: `application/json` only, unknown fields refused by the
/// target types, the raw bytes kept for the idempotency fingerprint.
#[derive(Debug)]
pub struct ApiJson<T> {
    pub value: T,
    pub bytes: Bytes,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = is_json(req.headers());
        let bytes = read_body(req, state).await?;
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        Ok(Self {
            value: parse_json(&bytes)?,
            bytes,
        })
    }
}

/// Like [`ApiJson`], but an empty body means `T::default()`: for commands
/// whose fields are all optional (`POST /orders/{id}/deliver`).
#[derive(Debug)]
pub struct MaybeJson<T> {
    pub value: T,
    pub bytes: Bytes,
}

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for MaybeJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = is_json(req.headers());
        let bytes = read_body(req, state).await?;
        if bytes.is_empty() {
            return Ok(Self {
                value: T::default(),
                bytes,
            });
        }
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        Ok(Self {
            value: parse_json(&bytes)?,
            bytes,
        })
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::MalformedJson(rejection.body_text())
        }
    })
}

/// Parses JSON, naming the failing field's path; a shape error (wrong type,
/// unknown or missing field) is a 422, a syntax error a 400.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = if path.is_empty() || path == "." {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        };
        match inner.classify() {
            serde_json::error::Category::Data => ApiError::InvalidBody(message),
            _ => ApiError::MalformedJson(message),
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    Ok(value)
}

/// A UUID path segment; anything else is a 400 `invalid-id`.
#[derive(Debug, Clone, Copy)]
pub struct IdPath(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::InvalidId(e.body_text()))?;
        Uuid::parse_str(&raw)
            .map(Self)
            .map_err(|_| ApiError::InvalidId(raw))
    }
}

/// `If-Match: "<version>"` (optional): the version the caller last saw.
/// Accepted exactly as the OpenAPI document's pattern says: `*` (any
/// version, no condition), or 1 to 18 digits, quoted or not, optionally
/// weak (`W/"3"`); anything else is a 400 `invalid-header`.
#[derive(Debug, Clone, Copy)]
pub struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Ok(Self(None));
        };
        let invalid = || ApiError::InvalidHeader {
            name: "If-Match",
            reason: "expected an ETag such as \"3\" (the order version) or *",
        };
        let raw = value.to_str().map_err(|_| invalid())?.trim();
        if raw == "*" {
            return Ok(Self(None));
        }
        let tag = raw.strip_prefix("W/").unwrap_or(raw);
        let digits = match tag.strip_prefix('"') {
            Some(quoted) => quoted.strip_suffix('"').ok_or_else(invalid)?,
            None => tag,
        };
        if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        digits
            .parse::<i64>()
            .map(|v| Self(Some(v)))
            .map_err(|_| invalid())
    }
}

/// The ETag of an order version.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// `Idempotency-Key` (optional on every POST): 1–255 visible ASCII characters.
#[derive(Debug, Clone)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(Self(None));
        };
        let key = value
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or(ApiError::InvalidHeader {
                name: "Idempotency-Key",
                reason: "must be 1 to 255 visible ASCII characters",
            })?;
        Ok(Self(Some(key.to_owned())))
    }
}

/// Fingerprint of a request for idempotency: method, path and body.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update([0]);
    hasher.update(path.as_bytes());
    hasher.update([0]);
    hasher.update(body);
    hasher.finalize().to_vec()
}

/// A JSON integer as JSON Schema counts one: `3` and `3.0` alike (a number
/// whose fractional part is zero is an integer, and some encoders write
/// whole numbers that way); `3.5`, or a value outside `i64`, is refused.
#[derive(Debug, Clone, Copy)]
pub struct JsonInt(pub i64);

impl<'de> serde::Deserialize<'de> for JsonInt {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = JsonInt;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<JsonInt, E> {
                Ok(JsonInt(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<JsonInt, E> {
                i64::try_from(v)
                    .map(JsonInt)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<JsonInt, E> {
                // i64::MAX is not an f64; 2^63 is the first value past it.
                const LIMIT: f64 = 9_223_372_036_854_775_808.0;
                if v.fract() == 0.0 && (-LIMIT..LIMIT).contains(&v) {
                    Ok(JsonInt(v as i64))
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// `#[serde(deserialize_with = "json_int")]` for an `i64` field.
pub fn json_int<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    <JsonInt as serde::Deserialize>::deserialize(deserializer).map(|n| n.0)
}

/// `#[serde(deserialize_with = "json_int_or_null")]` for an `Option<i64>` field.
pub fn json_int_or_null<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    <Option<JsonInt> as serde::Deserialize>::deserialize(deserializer).map(|n| n.map(|n| n.0))
}
