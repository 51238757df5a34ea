//! Version 2 of `OrderPlaced`: the sales channel and a structured shipping
//! address with a region.
//!
//! Why a new version and not an edit of v1: the address changes shape
//! (`line1`/`line2` become `lines`), which would break every v1 consumer.
//! Both new facts are optional, because orders placed before the upgrade
//! never had them: the upcast from v1 leaves them out instead of inventing
//! them. The other event types did not change and stay at version 1.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::v1::{Customer, Line};

/// The sales channels producers emit today. Consumers read the field as a
/// string: a channel added later is a compatible widening they must accept
/// (store it, show it), never a reason to refuse the event.
pub const SALES_CHANNELS: [&str; 5] = ["web", "mobile_app", "store", "marketplace", "phone"];

/// Where the order ships to (v2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// One or two street lines, in order (at most four by the schema).
    pub lines: Vec<String>,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-2 subdivision code (`GB-ENG`, `US-CA`, `DE-BY`) whose prefix
    /// is `country`; absent when the customer gave none and on every order
    /// placed before v2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
}

/// `OrderPlaced` v2: v1's facts plus the sales channel and the structured
/// address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order_id: Uuid,
    pub customer: Customer,
    pub lines: Vec<Line>,
    pub currency: String,
    pub total_minor: i64,
    pub shipping_address: Address,
    /// One of [`SALES_CHANNELS`] (or a later one); absent when the client
    /// did not say and on every order placed before v2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sales_channel: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub placed_at: OffsetDateTime,
}
