//! What a token says: its claims, the roles, and minting one (for
//! `orderctl token` and the tests).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Longest subject of a staff or service token (visible ASCII).
pub const MAX_SUBJECT_CHARS: usize = 128;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Places, pays and cancels their own orders; reads and searches their own.
    Customer,
    /// Every order command, the catalog, every order.
    Staff,
    /// Machines (payment and shipping integrations, orderctl): every order
    /// command and every read, not the catalog.
    Service,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Staff => "staff",
            Self::Service => "service",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "customer" => Ok(Self::Customer),
            "staff" => Ok(Self::Staff),
            "service" => Ok(Self::Service),
            other => Err(format!(
                "unknown role {other:?}; one of customer, staff, service"
            )),
        }
    }
}

/// The claims this system reads (others are ignored).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The acting identity: a customer id (UUID) for `customer` tokens.
    pub sub: String,
    pub role: Role,
    pub iss: String,
    pub aud: String,
    /// Seconds since 1970.
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

/// Who is acting: the token's subject in its role. Every handler takes it
/// explicitly; idempotency keys, rate limits and ownership are scoped by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A customer, acting on their own orders only.
    Customer { id: Uuid },
    /// Staff may act on every order and the catalog.
    Staff { id: String },
    /// A machine.
    Service { id: String },
}

impl Actor {
    /// Every caller when authentication is disabled (`AUTH_DISABLED=true`).
    pub fn anonymous_staff() -> Self {
        Self::Staff {
            id: "anonymous".to_owned(),
        }
    }

    /// The actor a verified token names, or why the token names none.
    pub fn from_claims(claims: &Claims) -> Result<Self, &'static str> {
        let sub = claims.sub.as_str();
        match claims.role {
            Role::Customer => Uuid::parse_str(sub)
                .map(|id| Self::Customer { id })
                .map_err(|_| "a customer token's subject must be the customer id (a UUID)"),
            role => {
                let valid = !sub.is_empty()
                    && sub.len() <= MAX_SUBJECT_CHARS
                    && sub.bytes().all(|b| b.is_ascii_graphic());
                if !valid {
                    return Err("the subject must be 1 to 128 visible ASCII characters");
                }
                let id = sub.to_owned();
                Ok(if role == Role::Staff {
                    Self::Staff { id }
                } else {
                    Self::Service { id }
                })
            }
        }
    }

    pub fn role(&self) -> Role {
        match self {
            Self::Customer { .. } => Role::Customer,
            Self::Staff { .. } => Role::Staff,
            Self::Service { .. } => Role::Service,
        }
    }

    /// `role:subject`: the scope of idempotency keys and rate limits; one
    /// caller's key never matches another's.
    pub fn principal(&self) -> String {
        match self {
            Self::Customer { id } => format!("customer:{id}"),
            Self::Staff { id } => format!("staff:{id}"),
            Self::Service { id } => format!("service:{id}"),
        }
    }

    /// The customer every read and command of this actor is confined to;
    /// `None` for staff and service, who see every order.
    pub fn own_customer(&self) -> Option<Uuid> {
        match self {
            Self::Customer { id } => Some(*id),
            _ => None,
        }
    }
}

/// Seconds since 1970, now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl Claims {
    /// Claims for `sub` in `role`, valid from now for `ttl`.
    pub fn new(sub: &str, role: Role, issuer: &str, audience: &str, ttl: Duration) -> Self {
        let now = now_secs();
        Self {
            sub: sub.to_owned(),
            role,
            iss: issuer.to_owned(),
            aud: audience.to_owned(),
            exp: now + ttl.as_secs(),
            nbf: Some(now),
            iat: Some(now),
        }
    }
}

/// Signs `claims` with an HS256 `secret` (local runs; `orderctl token`).
pub fn mint_hs256(secret: &[u8], claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
    let key = EncodingKey::from_secret(secret)?;
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key)
}
