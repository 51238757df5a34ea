use std::collections::HashMap;

use proptest::prelude::*;
use time::OffsetDateTime;

use super::*;
use crate::values::Money;

fn text(s: &str) -> Text {
    Text::parse(s, 200).expect("valid text")
}

fn eur() -> Currency {
    Currency::parse("EUR").expect("valid")
}

fn product(n: u8, price: i64, available: i64) -> ProductFacts {
    ProductFacts {
        id: ProductId(uuid::Uuid::from_u128(u128::from(n) + 1)),
        sku: Sku::parse(&format!("SKU-{n}")).expect("valid"),
        name: text(&format!("Product {n}")),
        unit_price: Money::new(price, eur()).expect("valid"),
        active: true,
        available,
    }
}

fn qty(n: i64) -> Quantity {
    Quantity::new(n).expect("valid quantity")
}

fn place(lines: Vec<(ProductFacts, Quantity)>) -> Command {
    Command::Place(PlaceOrder {
        order_id: OrderId(uuid::Uuid::from_u128(7)),
        customer: CustomerSnapshot {
            id: CustomerId(uuid::Uuid::from_u128(9)),
            name: text("Ada Lovelace"),
            email: Email::parse("ada@example.com").expect("valid"),
        },
        lines,
        shipping_address: ShippingAddress {
            line1: text("1 Analytical Way"),
            line2: None,
            city: text("London"),
            postal_code: text("N1 9GU"),
            region: None,
            country: text("GB"),
        },
        sales_channel: None,
    })
}

fn now() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH
}

/// Runs commands from nothing, applying each decision; panics on refusal.
fn history(commands: Vec<Command>) -> Order {
    let mut order = None;
    for command in commands {
        for event in decide(order.as_ref(), command).expect("command accepted") {
            order = Some(evolve(order, &event, now()).expect("event applies"));
        }
    }
    order.expect("an order was placed")
}

fn placed() -> Order {
    history(vec![place(vec![
        (product(1, 250, 10), qty(2)),
        (product(2, 1000, 5), qty(1)),
    ])])
}

fn pay() -> Command {
    Command::Pay {
        payment_reference: Some(text("pay_123")),
    }
}
fn ship() -> Command {
    Command::Ship {
        carrier: text("DHL"),
        tracking_number: text("JD0001"),
    }
}
fn cancel() -> Command {
    Command::Cancel {
        reason: text("changed my mind"),
    }
}

#[test]
fn placing_prices_lines_and_totals() {
    let order = placed();
    assert_eq!(order.status, OrderStatus::Placed);
    assert_eq!(order.version, 1);
    assert_eq!(order.total_minor, 2 * 250 + 1000);
    assert_eq!(order.lines[0].line_total_minor, 500);
    assert_eq!(order.currency, eur());
}

#[test]
fn happy_path_versions_are_contiguous() {
    let order = history(vec![
        place(vec![(product(1, 250, 10), qty(2))]),
        pay(),
        ship(),
        Command::Deliver,
    ]);
    assert_eq!(order.status, OrderStatus::Delivered);
    assert_eq!(order.version, 4);
    assert_eq!(order.carrier.as_ref().map(Text::as_str), Some("DHL"));
    assert!(order.paid_at.is_some() && order.shipped_at.is_some() && order.delivered_at.is_some());
}

#[test]
fn paid_cancellation_refunds_the_total() {
    let order = history(vec![
        place(vec![(product(1, 250, 10), qty(2))]),
        pay(),
        cancel(),
    ]);
    assert_eq!(order.status, OrderStatus::Cancelled);
    assert_eq!(order.refund_minor, Some(500));
    let unpaid = history(vec![place(vec![(product(1, 250, 10), qty(2))]), cancel()]);
    assert_eq!(unpaid.refund_minor, None);
}

#[test]
fn every_illegal_transition_names_the_current_state() {
    use OrderStatus::*;
    let at = |cmds: Vec<Command>| history(cmds);
    let base = || place(vec![(product(1, 250, 10), qty(1))]);
    let states = vec![
        (Placed, at(vec![base()])),
        (Paid, at(vec![base(), pay()])),
        (Shipped, at(vec![base(), pay(), ship()])),
        (Delivered, at(vec![base(), pay(), ship(), Command::Deliver])),
        (Cancelled, at(vec![base(), cancel()])),
    ];
    let allowed: HashMap<(OrderStatus, &str), ()> = [
        ((Placed, "pay"), ()),
        ((Placed, "cancel"), ()),
        ((Paid, "ship"), ()),
        ((Paid, "cancel"), ()),
        ((Shipped, "deliver"), ()),
    ]
    .into_iter()
    .collect();
    for (status, order) in &states {
        for command in [pay(), ship(), Command::Deliver, cancel()] {
            let action = command.action();
            let result = decide(Some(order), command);
            if allowed.contains_key(&(*status, action)) {
                assert!(result.is_ok(), "{action} from {status} should be allowed");
            } else {
                assert_eq!(
                    result,
                    Err(DomainError::InvalidTransition {
                        action,
                        current: *status
                    }),
                    "{action} from {status}"
                );
            }
        }
        assert_eq!(decide(Some(order), base()), Err(DomainError::AlreadyExists));
    }
}

#[test]
fn commands_on_a_missing_order_are_not_found() {
    for command in [pay(), ship(), Command::Deliver, cancel()] {
        assert_eq!(decide(None, command), Err(DomainError::NotFound));
    }
}

#[test]
fn place_order_rejections() {
    assert_eq!(decide(None, place(vec![])), Err(DomainError::NoLines));

    let many = (0..=100u8).map(|n| (product(n, 1, 10), qty(1))).collect();
    assert_eq!(
        decide(None, place(many)),
        Err(DomainError::TooManyLines { max: 100 })
    );

    let p = product(1, 100, 10);
    assert_eq!(
        decide(None, place(vec![(p.clone(), qty(1)), (p.clone(), qty(2))])),
        Err(DomainError::DuplicateProduct(p.id))
    );

    let mut inactive = product(2, 100, 10);
    inactive.active = false;
    assert_eq!(
        decide(None, place(vec![(inactive.clone(), qty(1))])),
        Err(DomainError::ProductInactive(inactive.id))
    );

    let mut usd = product(3, 100, 10);
    usd.unit_price = Money::new(100, Currency::parse("USD").expect("valid")).expect("valid");
    assert_eq!(
        decide(
            None,
            place(vec![(product(1, 100, 10), qty(1)), (usd, qty(1))])
        ),
        Err(DomainError::MixedCurrencies)
    );

    let scarce = product(4, 100, 2);
    assert_eq!(
        decide(None, place(vec![(scarce.clone(), qty(3))])),
        Err(DomainError::InsufficientStock {
            product_id: scarce.id,
            requested: 3,
            available: 2
        })
    );
}

#[test]
fn largest_order_does_not_overflow() {
    let lines = (0..100u8)
        .map(|n| (product(n, Money::MAX_MINOR, 1000), qty(1000)))
        .collect();
    let events = decide(None, place(lines)).expect("fits in i64");
    let OrderEvent::Placed { total_minor, .. } = &events[0] else {
        panic!("placed")
    };
    assert_eq!(*total_minor, Money::MAX_MINOR * 1000 * 100);
}

#[test]
fn evolve_refuses_impossible_histories() {
    assert!(evolve(None, &OrderEvent::Delivered, now()).is_err());
    let order = placed();
    let events = decide(None, place(vec![(product(1, 1, 1), qty(1))])).expect("placed");
    assert!(evolve(Some(order), &events[0], now()).is_err());
}

// ------------------------------------------------------------ property test

#[derive(Debug, Clone)]
enum Step {
    Place { order: u8, lines: Vec<(u8, i64)> },
    Pay(u8),
    Ship(u8),
    Deliver(u8),
    Cancel(u8),
}

fn step() -> impl Strategy<Value = Step> {
    let order = 0u8..4;
    prop_oneof![
        (
            order.clone(),
            prop::collection::vec((0u8..6, 1i64..=8), 0..5)
        )
            .prop_map(|(order, lines)| Step::Place { order, lines }),
        order.clone().prop_map(Step::Pay),
        order.clone().prop_map(Step::Ship),
        order.clone().prop_map(Step::Deliver),
        order.prop_map(Step::Cancel),
    ]
}

proptest! {
    /// Random command sequences over a shared stock keep the invariants:
    /// stock never negative, totals equal the sum of lines, versions
    /// contiguous from 1, and stock is conserved (on hand + reserved by
    /// live orders = initial).
    #[test]
    fn random_commands_keep_invariants(steps in prop::collection::vec(step(), 1..60)) {
        const INITIAL: i64 = 12;
        let mut stock: HashMap<u8, i64> = (0..6).map(|p| (p, INITIAL)).collect();
        let mut orders: HashMap<u8, Order> = HashMap::new();
        let mut versions: HashMap<u8, Vec<i64>> = HashMap::new();

        for step in steps {
            let (key, command) = match step {
                Step::Place { order, lines } => {
                    let facts = lines
                        .into_iter()
                        .map(|(p, q)| (product(p, 100 + i64::from(p), stock[&p]), qty(q)))
                        .collect();
                    let Command::Place(mut place) = place(facts) else { unreachable!() };
                    place.order_id = OrderId(uuid::Uuid::from_u128(u128::from(order) + 100));
                    (order, Command::Place(place))
                }
                Step::Pay(o) => (o, pay()),
                Step::Ship(o) => (o, ship()),
                Step::Deliver(o) => (o, Command::Deliver),
                Step::Cancel(o) => (o, cancel()),
            };
            let current = orders.get(&key).cloned();
            let Ok(events) = decide(current.as_ref(), command) else { continue };
            let mut state = current;
            for event in &events {
                // The shell's stock effects, as order-command applies them.
                match event {
                    OrderEvent::Placed { lines, .. } => {
                        for line in lines {
                            let p = (line.product_id.0.as_u128() - 1) as u8;
                            *stock.get_mut(&p).expect("known product") -= i64::from(line.quantity.get());
                        }
                    }
                    OrderEvent::Cancelled { .. } => {
                        for line in &state.as_ref().expect("exists").lines {
                            let p = (line.product_id.0.as_u128() - 1) as u8;
                            *stock.get_mut(&p).expect("known product") += i64::from(line.quantity.get());
                        }
                    }
                    _ => {}
                }
                let next = evolve(state, event, now()).expect("decided events apply");
                versions.entry(key).or_default().push(next.version);
                state = Some(next);
            }
            orders.insert(key, state.expect("state after events"));
        }

        for (p, on_hand) in &stock {
            prop_assert!(*on_hand >= 0, "stock of {p} went negative: {on_hand}");
            let reserved: i64 = orders
                .values()
                .filter(|o| o.status != OrderStatus::Cancelled)
                .flat_map(|o| &o.lines)
                .filter(|l| (l.product_id.0.as_u128() - 1) as u8 == *p)
                .map(|l| i64::from(l.quantity.get()))
                .sum();
            prop_assert_eq!(on_hand + reserved, INITIAL);
        }
        for order in orders.values() {
            let sum: i64 = order.lines.iter().map(|l| l.line_total_minor).sum();
            prop_assert_eq!(order.total_minor, sum);
            for line in &order.lines {
                prop_assert_eq!(line.line_total_minor, line.unit_price_minor * i64::from(line.quantity.get()));
            }
        }
        for seen in versions.values() {
            let expected: Vec<i64> = (1..=seen.len() as i64).collect();
            prop_assert_eq!(seen, &expected);
        }
    }
}
