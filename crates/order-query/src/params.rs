//! Query parameters: parsed and bounded before anything reaches a store.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::error::QueryError;

/// Largest page.
pub const MAX_LIMIT: i64 = 100;
/// Default page.
pub const DEFAULT_LIMIT: i64 = 20;
/// Longest search text, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// Statuses a filter may name.
pub const STATUSES: [&str; 5] = ["placed", "paid", "shipped", "delivered", "cancelled"];

/// The raw query string as a map; unknown parameters are refused.
#[derive(Debug, Default)]
pub struct RawParams(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for RawParams {
    type Rejection = QueryError;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if query.len() > 4096 {
            return Err(QueryError::param("query string", "longer than 4096 bytes"));
        }
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded_pairs(query) {
            if map.insert(k.clone(), v).is_some() {
                return Err(QueryError::InvalidParameter {
                    name: "query string",
                    reason: format!("{k} given twice"),
                });
            }
        }
        Ok(Self(map))
    }
}

fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

impl RawParams {
    /// Refuses parameters outside `allowed`.
    pub fn only(&self, allowed: &[&str]) -> Result<(), QueryError> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(unknown) => Err(QueryError::InvalidParameter {
                name: "query string",
                reason: format!(
                    "unknown parameter {:?}; allowed: {}",
                    unknown.chars().take(40).collect::<String>(),
                    allowed.join(", ")
                ),
            }),
            None => Ok(()),
        }
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn uuid(&self, name: &'static str) -> Result<Option<Uuid>, QueryError> {
        self.str(name)
            .map(|v| Uuid::parse_str(v).map_err(|_| QueryError::param(name, "must be a UUID")))
            .transpose()
    }

    pub fn time(&self, name: &'static str) -> Result<Option<OffsetDateTime>, QueryError> {
        self.str(name)
            .map(|v| {
                OffsetDateTime::parse(v, &Rfc3339)
                    .map_err(|_| QueryError::param(name, "must be an RFC 3339 time"))
            })
            .transpose()
    }

    pub fn status(&self) -> Result<Option<String>, QueryError> {
        self.str("status")
            .map(|v| {
                STATUSES.contains(&v).then(|| v.to_owned()).ok_or_else(|| {
                    QueryError::param("status", format!("must be one of {}", STATUSES.join(", ")))
                })
            })
            .transpose()
    }

    pub fn limit(&self) -> Result<i64, QueryError> {
        match self.str("limit") {
            None => Ok(DEFAULT_LIMIT),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
                _ => Err(QueryError::param(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_LIMIT}"),
                )),
            },
        }
    }

    /// `min_version`: the version a command returned (read your own write).
    pub fn min_version(&self) -> Result<Option<i64>, QueryError> {
        self.str("min_version")
            .map(|v| match v.parse::<i64>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(QueryError::param(
                    "min_version",
                    "must be a whole number of at least 1",
                )),
            })
            .transpose()
    }

    /// `consistency`: `eventual` (default) or `strong`.
    pub fn strong(&self) -> Result<bool, QueryError> {
        match self.str("consistency") {
            None | Some("eventual") => Ok(false),
            Some("strong") => Ok(true),
            Some(_) => Err(QueryError::param(
                "consistency",
                "must be eventual or strong",
            )),
        }
    }

    pub fn cursor(&self) -> Result<Option<Cursor>, QueryError> {
        self.str("cursor").map(Cursor::decode).transpose()
    }

    /// The filters and paging of a list, refusing any parameter that is
    /// neither one of them nor in `also`.
    pub fn list(&self, also: &[&str]) -> Result<ListParams, QueryError> {
        let allowed: Vec<&str> = LIST_PARAMS.iter().chain(also).copied().collect();
        self.only(&allowed)?;
        Ok(ListParams {
            customer_id: self.uuid("customer_id")?,
            status: self.status()?,
            placed_from: self.time("placed_from")?,
            placed_to: self.time("placed_to")?,
            limit: self.limit()?,
            cursor: self.cursor()?,
        })
    }
}

/// The parameters `GET /orders` and `GET /orders/search` share.
const LIST_PARAMS: [&str; 6] = [
    "customer_id",
    "status",
    "placed_from",
    "placed_to",
    "limit",
    "cursor",
];

/// A list's filters (newest first, placed-from inclusive, placed-to
/// exclusive) and its page.
#[derive(Debug)]
pub struct ListParams {
    pub customer_id: Option<Uuid>,
    pub status: Option<String>,
    pub placed_from: Option<OffsetDateTime>,
    pub placed_to: Option<OffsetDateTime>,
    pub limit: i64,
    pub cursor: Option<Cursor>,
}

/// Keyset position: the last row's `placed_at` and id (sort is newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub placed_at: OffsetDateTime,
    pub order_id: Uuid,
}

impl Cursor {
    /// Opaque to clients: `<unix microseconds>.<order id>`.
    pub fn encode(&self) -> String {
        format!(
            "{}.{}",
            self.placed_at.unix_timestamp_nanos() / 1000,
            self.order_id.simple()
        )
    }

    /// Accepts exactly what [`Self::encode`] writes (the OpenAPI pattern
    /// `^[0-9]{1,16}\.[0-9a-fA-F]{32}$`): microseconds since 1970 (up to
    /// 16 digits, so within the year 2286) and the id as 32 hex digits.
    pub fn decode(raw: &str) -> Result<Self, QueryError> {
        let invalid = || QueryError::param("cursor", "is not a cursor this API returned");
        let (micros, id) = raw.split_once('.').ok_or_else(invalid)?;
        let digits =
            !micros.is_empty() && micros.len() <= 16 && micros.bytes().all(|b| b.is_ascii_digit());
        if !digits || id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let micros: i128 = micros.parse().map_err(|_| invalid())?;
        let placed_at =
            OffsetDateTime::from_unix_timestamp_nanos(micros * 1000).map_err(|_| invalid())?;
        let order_id = Uuid::parse_str(id).map_err(|_| invalid())?;
        Ok(Self {
            placed_at,
            order_id,
        })
    }
}

/// An order id from the path.
#[derive(Debug, Clone, Copy)]
pub struct OrderPath(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for OrderPath {
    type Rejection = QueryError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| QueryError::InvalidId(e.body_text()))?;
        Uuid::parse_str(&raw)
            .map(Self)
            .map_err(|_| QueryError::InvalidId(raw))
    }
}
