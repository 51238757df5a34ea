//! The verification keys and the one verification path.
//!
//! Every key carries the one algorithm it verifies (HS256 for the local
//! secret; RS256 or ES256 as a JWKS entry's mandatory `alg` says), and a
//! token is checked only against keys whose algorithm is the one its header
//! names: the token never chooses how it is verified. `none` is not an
//! algorithm jsonwebtoken parses, so such a token fails as malformed.

use std::path::Path;
use std::time::Duration;

use jsonwebtoken::jwk::{JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::error::Rejection;
use super::token::{Actor, Claims};

/// Longest token accepted, in bytes; longer ones are refused unread.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET_BYTES: usize = 32;

/// One verification key and the algorithm pinned to it.
struct Key {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// The keys a service verifies with, and what every token must say.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<Key>,
    issuer: String,
    audience: String,
    leeway: Duration,
}

/// A key source that cannot be used; the service refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("AUTH_HS256_SECRET must be at least {MIN_SECRET_BYTES} bytes")]
    ShortSecret,
    #[error("reading the JWKS file {path}: {reason}")]
    Jwks { path: String, reason: String },
    #[error("no verification key configured")]
    NoKeys,
}

impl KeySet {
    /// Keys from an HS256 secret and/or a JWKS file.
    pub fn load(
        hs256_secret: Option<&[u8]>,
        jwks_file: Option<&Path>,
        issuer: &str,
        audience: &str,
        leeway: Duration,
    ) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        if let Some(secret) = hs256_secret {
            if secret.len() < MIN_SECRET_BYTES {
                return Err(KeyError::ShortSecret);
            }
            keys.push(Key {
                kid: None,
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret).map_err(|_| KeyError::ShortSecret)?,
            });
        }
        if let Some(path) = jwks_file {
            keys.extend(read_jwks(path)?);
        }
        if keys.is_empty() {
            return Err(KeyError::NoKeys);
        }
        Ok(Self {
            keys,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            leeway,
        })
    }

    /// The actor a bearer token names, once its signature, algorithm,
    /// issuer, audience, `exp`, `nbf` and subject have all been checked.
    pub fn verify(&self, token: &str) -> Result<Actor, Rejection> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Rejection::invalid("the token is too large"));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| Rejection::invalid("the token is malformed"))?;
        let candidates = self.keys.iter().filter(|k| {
            k.algorithm == header.alg
                && match (&header.kid, &k.kid) {
                    (Some(wanted), Some(kid)) => wanted == kid,
                    _ => true,
                }
        });
        let mut last = Rejection::invalid("no key for the token's algorithm");
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &self.validation(key.algorithm)) {
                Ok(data) => {
                    return Actor::from_claims(&data.claims).map_err(Rejection::invalid);
                }
                Err(err) => {
                    last = Rejection::from_jwt(&err);
                    // Another key of the same algorithm may have signed it
                    // (a rotation); any other failure is final.
                    if !matches!(
                        err.kind(),
                        jsonwebtoken::errors::ErrorKind::InvalidSignature
                    ) {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut v = Validation::new(algorithm);
        v.algorithms = vec![algorithm];
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.validate_exp = true;
        v.validate_nbf = true;
        v.leeway = self.leeway.as_secs();
        v
    }

    /// How many keys are loaded (for the reload log line).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The RS256 and ES256 keys of a JWKS file; each must name its `alg`.
fn read_jwks(path: &Path) -> Result<Vec<Key>, KeyError> {
    let fail = |reason: String| KeyError::Jwks {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let set: JwkSet = serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
    let mut keys = Vec::with_capacity(set.keys.len());
    for (i, jwk) in set.keys.iter().enumerate() {
        let algorithm = match jwk.common.key_algorithm {
            Some(KeyAlgorithm::RS256) => Algorithm::RS256,
            Some(KeyAlgorithm::ES256) => Algorithm::ES256,
            other => {
                return Err(fail(format!(
                    "key {i}: `alg` must be RS256 or ES256, not {other:?}"
                )));
            }
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| fail(format!("key {i}: {e}")))?;
        if key.family() != algorithm.family() {
            return Err(fail(format!("key {i}: its type does not fit `alg`")));
        }
        keys.push(Key {
            kid: jwk.common.key_id.clone(),
            algorithm,
            key,
        });
    }
    Ok(keys)
}
