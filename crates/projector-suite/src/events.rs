//! A deterministic sequence of order events: fixed ids and timestamps, so a
//! projection of it can be compared with a checked-in snapshot.

use orderflow_contracts::v1::{
    Customer, Line, OrderCancelled, OrderDelivered, OrderPaid, OrderShipped,
};
use orderflow_contracts::v2::{Address, OrderPlaced};
use orderflow_contracts::{CurrentEvent, Envelope, EventMeta};
use orderflow_domain::OrderId;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// Order `i` of the sequence.
pub fn order_id(i: u32) -> Uuid {
    Uuid::from_u128(0x0000_0000_0000_7000_8000_0000_0000_0000 + u128::from(i))
}

fn at(i: u32, step: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_790_000_000).expect("valid")
        + Duration::minutes(i64::from(i) * 10 + step)
}

/// Envelope of version `version` of order `i`, with a stable event id.
pub fn envelope(i: u32, version: i64, event: CurrentEvent) -> Envelope {
    let meta = EventMeta {
        correlation_id: Uuid::from_u128(0xc000_0000 + u128::from(i)),
        causation_id: Uuid::from_u128(0xca00_0000 + u128::from(i) * 16 + version as u128),
        occurred_at: at(i, version),
    };
    let mut envelope = event.into_envelope(OrderId(order_id(i)), version, meta);
    envelope.event_id = Uuid::from_u128(0xe000_0000_0000 + u128::from(i) * 16 + version as u128);
    envelope
}

/// The events of order `i`: placed, then a lifecycle chosen by `i % 5`.
pub fn order_events(i: u32) -> Vec<Envelope> {
    let id = order_id(i);
    let placed = CurrentEvent::Placed(OrderPlaced {
        order_id: id,
        customer: Customer {
            customer_id: Uuid::from_u128(0xcc00 + u128::from(i % 7)),
            name: format!("Customer {}", i % 7),
            email: format!("customer{}@example.com", i % 7),
        },
        lines: (0..(i % 3 + 1))
            .map(|n| Line {
                product_id: Uuid::from_u128(0xaa00 + u128::from(n)),
                sku: format!("SKU-{n}"),
                product_name: ["Blue mug", "Green tea", "Copper kettle"][n as usize].to_owned(),
                unit_price_minor: 500 + i64::from(n) * 250,
                quantity: n + 1,
                line_total_minor: (500 + i64::from(n) * 250) * i64::from(n + 1),
            })
            .collect(),
        currency: "EUR".into(),
        total_minor: (0..(i % 3 + 1))
            .map(|n| (500 + i64::from(n) * 250) * i64::from(n + 1))
            .sum(),
        shipping_address: Address {
            lines: vec![format!("{i} Test Street")],
            city: "Leeds".into(),
            postal_code: "LS1 1AA".into(),
            // Every third order without a region or channel, as a client
            // that does not send them.
            region: (!i.is_multiple_of(3)).then(|| "GB-ENG".into()),
            country: "GB".into(),
        },
        sales_channel: (!i.is_multiple_of(3)).then(|| ["web", "store"][(i % 2) as usize].into()),
        placed_at: at(i, 1),
    });
    let total = match &placed {
        CurrentEvent::Placed(p) => p.total_minor,
        _ => 0,
    };
    let paid = CurrentEvent::Paid(OrderPaid {
        order_id: id,
        amount_minor: total,
        currency: "EUR".into(),
        payment_reference: Some(format!("pay-{i}")),
        paid_at: at(i, 2),
    });
    let shipped = CurrentEvent::Shipped(OrderShipped {
        order_id: id,
        carrier: "DHL".into(),
        tracking_number: format!("TRACK{i:05}"),
        shipped_at: at(i, 3),
    });
    let delivered = CurrentEvent::Delivered(OrderDelivered {
        order_id: id,
        delivered_at: at(i, 4),
    });
    let cancelled = |v: i64, refund: Option<i64>| {
        CurrentEvent::Cancelled(OrderCancelled {
            order_id: id,
            reason: "customer asked".into(),
            refund_minor: refund,
            cancelled_at: at(i, v),
        })
    };
    let events = match i % 5 {
        0 => vec![placed],
        1 => vec![placed, paid],
        2 => vec![placed, paid, shipped, delivered],
        3 => vec![placed, cancelled(2, None)],
        _ => vec![placed, paid, cancelled(3, Some(total))],
    };
    events
        .into_iter()
        .enumerate()
        .map(|(n, e)| envelope(i, n as i64 + 1, e))
        .collect()
}

/// `orders` orders' events, interleaved across orders, each order in version order.
pub fn sequence(orders: u32) -> Vec<Envelope> {
    let per_order: Vec<Vec<Envelope>> = (0..orders).map(order_events).collect();
    let longest = per_order.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::new();
    for step in 0..longest {
        for events in &per_order {
            if let Some(e) = events.get(step) {
                out.push(e.clone());
            }
        }
    }
    out
}

/// The final version of every order in `events`.
pub fn final_versions(events: &[Envelope]) -> Vec<(Uuid, i64)> {
    let mut last = std::collections::BTreeMap::new();
    for e in events {
        let v = last.entry(e.aggregate_id).or_insert(0);
        *v = (*v).max(e.aggregate_version);
    }
    last.into_iter().collect()
}

/// Messages for [`crate::produce`].
pub fn messages(events: &[Envelope]) -> Vec<(Uuid, Vec<u8>)> {
    events
        .iter()
        .map(|e| {
            (
                e.aggregate_id,
                serde_json::to_vec(e).expect("envelope serialises"),
            )
        })
        .collect()
}
