//! Where an order was placed: the sales channel the business reports by.
//!
//! A closed set on the command side (the API refuses anything else), so
//! reports never see spelling variants; the event contract carries it as a
//! string and documents the values (`proto/events/v2/OrderPlaced`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The channel an order came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SalesChannel {
    /// The web shop.
    Web,
    /// The iOS or Android app.
    MobileApp,
    /// A till in a physical store.
    Store,
    /// A third-party marketplace relaying the order.
    Marketplace,
    /// The telephone sales desk.
    Phone,
}

impl SalesChannel {
    /// Every channel, in the order the docs list them.
    pub const ALL: [SalesChannel; 5] = [
        Self::Web,
        Self::MobileApp,
        Self::Store,
        Self::Marketplace,
        Self::Phone,
    ];

    /// The snake_case name used in APIs, events and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::MobileApp => "mobile_app",
            Self::Store => "store",
            Self::Marketplace => "marketplace",
            Self::Phone => "phone",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == raw)
    }
}

impl fmt::Display for SalesChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::SalesChannel;

    #[test]
    fn every_channel_round_trips_through_its_name() {
        for channel in SalesChannel::ALL {
            assert_eq!(SalesChannel::parse(channel.as_str()), Some(channel));
        }
        assert_eq!(SalesChannel::parse("Web"), None);
        assert_eq!(SalesChannel::parse("fax"), None);
    }
}
