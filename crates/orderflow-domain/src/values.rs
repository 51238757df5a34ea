//! Newtypes that validate once, at the edge; inside, an invalid value cannot exist.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a raw value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    #[error("must not contain control characters")]
    ControlCharacter,
    #[error("must be between {min} and {max}")]
    OutOfRange { min: i64, max: i64 },
    #[error("must be {0}")]
    Format(&'static str),
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new time-ordered (v7) id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

uuid_id!(
    /// Identifies an order (the aggregate).
    OrderId
);
uuid_id!(
    /// Identifies a customer.
    CustomerId
);
uuid_id!(
    /// Identifies a product.
    ProductId
);

/// Human text such as a name, a reason or a carrier: 1 to `max` characters,
/// trimmed, no control characters (so no NUL, which Postgres refuses).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Text(String);

impl Text {
    /// Validates `raw` as text of at most `max` characters.
    pub fn parse(raw: &str, max: usize) -> Result<Self, ValueError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(ValueError::Empty);
        }
        if trimmed.chars().count() > max {
            return Err(ValueError::TooLong { max });
        }
        if trimmed.chars().any(char::is_control) {
            return Err(ValueError::ControlCharacter);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address: one `@` with text on both sides, at most 254 characters.
/// Deliverability is not our concern; catching obvious garbage is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Validates and lowercases an address.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let text = Text::parse(raw, 254)?;
        let (local, domain) = text
            .as_str()
            .split_once('@')
            .ok_or(ValueError::Format("an email address like name@example.com"))?;
        let valid = !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
            && !text.as_str().contains(char::is_whitespace);
        if !valid {
            return Err(ValueError::Format("an email address like name@example.com"));
        }
        Ok(Self(text.as_str().to_lowercase()))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stock-keeping unit: 1 to 64 of `A-Z 0-9 - _ .`, stored upper-case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sku(String);

impl Sku {
    /// Validates and upper-cases a SKU.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let sku = raw.trim().to_ascii_uppercase();
        if sku.is_empty() {
            return Err(ValueError::Empty);
        }
        if sku.len() > 64 {
            return Err(ValueError::TooLong { max: 64 });
        }
        if !sku
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(ValueError::Format("letters, digits, '-', '_' or '.'"));
        }
        Ok(Self(sku))
    }

    /// The SKU.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Units of one product on one order line: 1 to 1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Quantity(u32);

impl Quantity {
    /// Most units of one product on one line.
    pub const MAX: u32 = 1000;

    /// Validates a quantity.
    pub fn new(raw: i64) -> Result<Self, ValueError> {
        if (1..=i64::from(Self::MAX)).contains(&raw) {
            Ok(Self(raw as u32))
        } else {
            Err(ValueError::OutOfRange {
                min: 1,
                max: i64::from(Self::MAX),
            })
        }
    }

    /// The number of units.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// An ISO 4217 alphabetic code: three upper-case ASCII letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    /// Validates a currency code (`EUR`, `usd` becomes `USD`).
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let upper = raw.trim().to_ascii_uppercase();
        match upper.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|x| x.is_ascii_uppercase()) => Ok(Self([*a, *b, *c])),
            _ => Err(ValueError::Format(
                "a three-letter ISO 4217 code such as EUR",
            )),
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Currency {
    type Error = ValueError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> Self {
        c.as_str().to_owned()
    }
}

/// An amount in integer minor units (cents) of a currency; never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Amount in minor units; never negative here.
    pub minor: i64,
    /// The currency.
    pub currency: Currency,
}

impl Money {
    /// Largest amount accepted anywhere: 10^13 minor units (10^11 whole units),
    /// far above any order and far below overflow when summed over 100 lines
    /// of 1000 units.
    pub const MAX_MINOR: i64 = 10_000_000_000_000;

    /// Validates a non-negative amount.
    pub fn new(minor: i64, currency: Currency) -> Result<Self, ValueError> {
        if (0..=Self::MAX_MINOR).contains(&minor) {
            Ok(Self { minor, currency })
        } else {
            Err(ValueError::OutOfRange {
                min: 0,
                max: Self::MAX_MINOR,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(
            Text::parse("  Ada  ", 10).map(|t| t.as_str().to_owned()),
            Ok("Ada".into())
        );
        assert_eq!(Text::parse("   ", 10), Err(ValueError::Empty));
        assert_eq!(
            Text::parse("abcdef", 5),
            Err(ValueError::TooLong { max: 5 })
        );
        assert_eq!(Text::parse("a\0b", 5), Err(ValueError::ControlCharacter));
        // SQL metacharacters are just text.
        assert!(Text::parse("Robert'); DROP TABLE orders;--", 100).is_ok());
    }

    #[test]
    fn quantities_are_one_to_a_thousand() {
        assert!(Quantity::new(0).is_err());
        assert!(Quantity::new(-1).is_err());
        assert!(Quantity::new(1001).is_err());
        assert!(Quantity::new(i64::MAX).is_err());
        assert_eq!(Quantity::new(1000).map(Quantity::get), Ok(1000));
    }

    #[test]
    fn skus_currencies_and_emails() {
        assert_eq!(
            Sku::parse("ab-1.x").map(|s| s.as_str().to_owned()),
            Ok("AB-1.X".into())
        );
        assert!(Sku::parse("a b").is_err());
        assert!(Sku::parse(&"A".repeat(65)).is_err());
        assert_eq!(
            Currency::parse("eur").map(|c| c.to_string()),
            Ok("EUR".into())
        );
        assert!(Currency::parse("EU").is_err());
        assert!(Currency::parse("E1R").is_err());
        assert_eq!(
            Email::parse("Ada@Example.com").map(|e| e.as_str().to_owned()),
            Ok("ada@example.com".into())
        );
        for bad in [
            "ada",
            "@example.com",
            "ada@example",
            "ada@@example.com",
            "a da@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn money_is_bounded() {
        let eur = Currency::parse("EUR").expect("valid");
        assert!(Money::new(-1, eur).is_err());
        assert!(Money::new(Money::MAX_MINOR + 1, eur).is_err());
        assert!(Money::new(0, eur).is_ok());
    }
}
