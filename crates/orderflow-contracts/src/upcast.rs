//! Upcasting: every older schema version turned into today's shape, in one
//! place.
//!
//! Consumers never branch on `schema_version` themselves; [`crate::decode`]
//! reads a payload at the version it was written in and passes it through
//! the functions here. Each step is pure and total (an older event always
//! has a current form), and facts the old version did not carry stay absent:
//! an order placed before v2 has no sales channel and no region, and nothing
//! here guesses one. A v3 adds one step (`v2 → v3`) and chains it after the
//! ones below.

use crate::{v1, v2};

/// `OrderPlaced` v1 → v2: the two address lines become `lines` (a blank
/// `line2` was never written, so it is simply left out); region and sales
/// channel stay absent.
pub fn order_placed_v1(old: v1::OrderPlaced) -> v2::OrderPlaced {
    let v1::Address {
        line1,
        line2,
        city,
        postal_code,
        country,
    } = old.shipping_address;
    v2::OrderPlaced {
        order_id: old.order_id,
        customer: old.customer,
        lines: old.lines,
        currency: old.currency,
        total_minor: old.total_minor,
        shipping_address: v2::Address {
            lines: std::iter::once(line1).chain(line2).collect(),
            city,
            postal_code,
            region: None,
            country,
        },
        sales_channel: None,
        placed_at: old.placed_at,
    }
}

#[cfg(test)]
mod tests;
