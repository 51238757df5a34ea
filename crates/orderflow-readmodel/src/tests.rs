use orderflow_contracts::v1::{
    Customer, Line, OrderCancelled, OrderDelivered, OrderPaid, OrderShipped,
};
use orderflow_contracts::v2::{Address, OrderPlaced};
use time::macros::datetime;

use super::*;

fn order() -> Uuid {
    Uuid::from_u128(1)
}

fn placed() -> CurrentEvent {
    CurrentEvent::Placed(OrderPlaced {
        order_id: order(),
        customer: Customer {
            customer_id: Uuid::from_u128(2),
            name: "Ada".into(),
            email: "ada@example.com".into(),
        },
        lines: vec![
            Line {
                product_id: Uuid::from_u128(3),
                sku: "A-1".into(),
                product_name: "Mug".into(),
                unit_price_minor: 500,
                quantity: 2,
                line_total_minor: 1000,
            },
            Line {
                product_id: Uuid::from_u128(4),
                sku: "B-2".into(),
                product_name: "Tea".into(),
                unit_price_minor: 250,
                quantity: 1,
                line_total_minor: 250,
            },
        ],
        currency: "EUR".into(),
        total_minor: 1250,
        shipping_address: Address {
            lines: vec!["1 Way".into()],
            city: "London".into(),
            postal_code: "N1".into(),
            region: Some("GB-ENG".into()),
            country: "GB".into(),
        },
        sales_channel: Some("web".into()),
        placed_at: datetime!(2026-11-30 10:00 UTC),
    })
}

fn run(events: &[(i64, CurrentEvent)]) -> Option<OrderSummary> {
    let mut summary = None;
    for (version, event) in events {
        if let Step::Applied(next) = apply(
            summary.as_ref(),
            *version,
            event,
            datetime!(2026-11-30 12:00 UTC),
        ) {
            summary = Some(*next);
        }
    }
    summary
}

#[test]
fn placed_builds_the_summary() {
    let s = run(&[(1, placed())]).expect("applied");
    assert_eq!(s.status, "placed");
    assert_eq!((s.line_count, s.item_count, s.total_minor), (2, 3, 1250));
    assert_eq!(s.product_names(), ["Mug", "Tea"]);
    assert_eq!(s.skus(), ["A-1", "B-2"]);
    assert_eq!(s.version, 1);
    assert_eq!(s.sales_channel.as_deref(), Some("web"));
    let address = s.shipping_address.as_ref().expect("address");
    assert_eq!(address.region.as_deref(), Some("GB-ENG"));
}

#[test]
fn lifecycle_fills_in_each_stage() {
    let at = datetime!(2026-11-30 11:00 UTC);
    let s = run(&[
        (1, placed()),
        (
            2,
            CurrentEvent::Paid(OrderPaid {
                order_id: order(),
                amount_minor: 1250,
                currency: "EUR".into(),
                payment_reference: Some("p".into()),
                paid_at: at,
            }),
        ),
        (
            3,
            CurrentEvent::Shipped(OrderShipped {
                order_id: order(),
                carrier: "DHL".into(),
                tracking_number: "T1".into(),
                shipped_at: at,
            }),
        ),
        (
            4,
            CurrentEvent::Delivered(OrderDelivered {
                order_id: order(),
                delivered_at: at,
            }),
        ),
    ])
    .expect("applied");
    assert_eq!(s.status, "delivered");
    assert_eq!(s.version, 4);
    assert_eq!(s.tracking_number.as_deref(), Some("T1"));
    assert_eq!(s.payment_reference.as_deref(), Some("p"));
    assert_eq!(s.delivered_at, Some(at));
}

#[test]
fn version_guard() {
    let s = run(&[(1, placed())]).expect("applied");
    let cancel = CurrentEvent::Cancelled(OrderCancelled {
        order_id: order(),
        reason: "r".into(),
        refund_minor: None,
        cancelled_at: datetime!(2026-11-30 11:00 UTC),
    });
    let at = datetime!(2026-11-30 12:00 UTC);
    assert_eq!(apply(Some(&s), 1, &placed(), at), Step::Duplicate);
    assert_eq!(apply(Some(&s), 3, &cancel, at), Step::Gap { stored: 1 });
    assert!(matches!(apply(Some(&s), 2, &cancel, at), Step::Applied(_)));
    assert_eq!(apply(None, 2, &cancel, at), Step::Gap { stored: 0 });
    assert!(matches!(apply(None, 1, &cancel, at), Step::Invalid(_)));
    assert!(matches!(
        apply(Some(&s), 2, &placed(), at),
        Step::Invalid(_)
    ));
}
