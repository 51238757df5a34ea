//! Redelivery that only a working inbox and version guard get right, and the
//! held-event timer reaching every held order.
//!
//! Re-sending a whole sequence in order, or repeating the event just
//! applied, converges to the same state even with no guard at all, so those
//! prove nothing about it. These cases send what a missing guard gets wrong:
//! an older event after newer ones, an `OrderPlaced` after its order moved
//! on, and a copy of an applied version under a new event id (which the
//! inbox cannot recognise; only the version guard can).

use std::time::Duration;

use futures::FutureExt as _;
use projector_suite::backends::{Env, placed_summary, read_state, write_bypassing};
use projector_suite::events::{messages, order_events, order_id};
use projector_suite::{Backend, produce, wait_for_versions};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(120);

async fn state_at(backend: Backend, env: &Env, expected: &[(uuid::Uuid, i64)]) -> Value {
    let env = env.clone();
    wait_for_versions("the projector to apply", DEADLINE, expected, move || {
        let env = env.clone();
        async move { read_state(backend, &env).await }.boxed()
    })
    .await
}

/// Waits until the projector recorded `event` in its inbox: it and
/// everything before it on its partition have been processed.
async fn processed(env: &Env, event: uuid::Uuid) {
    orderflow_testkit::eventually("the redeliveries to be processed", DEADLINE, || async {
        let seen: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM inbox WHERE event_id = $1)")
                .bind(event)
                .fetch_one(&env.db.pool)
                .await
                .ok()?;
        seen.then_some(())
    })
    .await;
}

pub async fn stale_and_forged_redeliveries_never_move_an_order_back(backend: Backend) {
    let env = Env::new(&format!("{}-guard", crate::cases::name(backend))).await;
    let running = backend.start(&env);
    // Order 2 goes placed, paid, shipped, delivered; order 7 the same way.
    let a = order_events(2);
    let b = order_events(7);
    assert_eq!((a.len(), b.len()), (4, 4));
    produce(&env.brokers, &env.topic, &messages(&a[..3])).await;
    produce(&env.brokers, &env.topic, &messages(&b[..2])).await;
    let before = state_at(backend, &env, &[(order_id(2), 3), (order_id(7), 2)]).await;
    assert_eq!(before[order_id(2).to_string()]["status"], "shipped");

    // Order 2: OrderPaid again after OrderShipped, then OrderPlaced again.
    // Order 7: version 2 again under a new event id, with another payment
    // reference, then version 1 likewise with another customer name.
    let mut forged_paid = b[1].clone();
    forged_paid.event_id = uuid::Uuid::now_v7();
    forged_paid.payload["payment_reference"] = "forged".into();
    forged_paid.payload["amount_minor"] = 1.into();
    let mut forged_placed = b[0].clone();
    forged_placed.event_id = uuid::Uuid::now_v7();
    forged_placed.payload["customer"]["name"] = "Mallory".into();
    forged_placed.payload["shipping_address"]["city"] = "Nowhere".into();
    let redelivered = [
        a[1].clone(),
        a[0].clone(),
        forged_paid,
        forged_placed.clone(),
    ];
    produce(&env.brokers, &env.topic, &messages(&redelivered[..2])).await;
    produce(&env.brokers, &env.topic, &messages(&redelivered[2..])).await;
    // The last forged event is recorded (as a duplicate) once processed.
    processed(&env, forged_placed.event_id).await;
    let after = read_state(backend, &env).await;
    running.stop().await;

    for order in [order_id(2), order_id(7)] {
        assert_eq!(
            after[order.to_string()],
            before[order.to_string()],
            "a redelivered or forged older version changed order {order}"
        );
    }
}

pub async fn the_held_timer_reaches_every_held_order(backend: Backend) {
    // More held orders than the timer reads in one page (1,000), every one
    // still waiting; only the last few in the timer's order get their gap
    // closed, behind the projector's back, as a backfill or repair does.
    const HELD: u32 = 1_100;
    const CLOSED: usize = 20;
    let env = Env::new(&format!("{}-pages", crate::cases::name(backend))).await;
    let orders: Vec<u32> = (0..HELD).map(|n| 10_000 + n * 5 + 2).collect();
    let events: Vec<_> = orders.iter().map(|&i| order_events(i)).collect();
    let seconds: Vec<_> = events.iter().map(|e| e[1].clone()).collect();
    // Gap timeout is 3 s in the suite: some are parked by the time the gap
    // closes, which must not stop them being released either.
    let running = backend.start(&env);
    produce(&env.brokers, &env.topic, &messages(&seconds)).await;
    orderflow_testkit::eventually("every version 2 to be held", DEADLINE, || async {
        let held: i64 = sqlx::query_scalar("SELECT count(*) FROM held_events")
            .fetch_one(&env.db.pool)
            .await
            .ok()?;
        (held == i64::from(HELD)).then_some(())
    })
    .await;

    // The timer walks orders by id: close the gaps of the highest ids.
    let mut by_id: Vec<usize> = (0..events.len()).collect();
    by_id.sort_by_key(|&n| events[n][0].aggregate_id);
    let closed: Vec<usize> = by_id[by_id.len() - CLOSED..].to_vec();
    let firsts: Vec<_> = closed
        .iter()
        .map(|&n| placed_summary(&events[n][0]))
        .collect();
    write_bypassing(backend, &env, &firsts).await;

    let expected: Vec<(uuid::Uuid, i64)> = closed
        .iter()
        .map(|&n| (events[n][0].aggregate_id, 2))
        .collect();
    state_at(backend, &env, &expected).await;
    // Rows are released just after the store write that applied them.
    let left = i64::from(HELD) - CLOSED as i64;
    let held =
        orderflow_testkit::eventually("the applied rows to be released", DEADLINE, || async {
            let held: i64 = sqlx::query_scalar("SELECT count(*) FROM held_events")
                .fetch_one(&env.db.pool)
                .await
                .ok()?;
            (held <= left).then_some(held)
        })
        .await;
    assert_eq!(held, left, "exactly the closed gaps were released");
    running.stop().await;
}

/// An event id the inbox has seen is skipped even when its version would
/// apply: only the inbox catches a redelivered id carrying another version
/// (the version guard would take it as the next version).
pub async fn an_event_id_the_inbox_has_seen_is_never_applied_again(backend: Backend) {
    let env = Env::new(&format!("{}-inbox", crate::cases::name(backend))).await;
    let running = backend.start(&env);
    let a = order_events(3);
    let marker = order_events(4);
    // One partition, so the marker is processed after the reused id.
    projector_suite::produce_to(&env.brokers, &env.topic, 0, &messages(&a[..1])).await;
    state_at(backend, &env, &[(order_id(3), 1)]).await;

    let mut reused = a[1].clone();
    reused.event_id = a[0].event_id;
    projector_suite::produce_to(
        &env.brokers,
        &env.topic,
        0,
        &messages(&[reused, marker[0].clone()]),
    )
    .await;
    let after = state_at(backend, &env, &[(order_id(4), 1)]).await;
    running.stop().await;
    assert_eq!(
        after[order_id(3).to_string()]["version"].as_i64(),
        Some(1),
        "an event id the inbox had seen was applied again as version 2"
    );
}

/// The same, with the reused id in the batch right after its first use:
/// batches of one, on the topic before the projector starts, so it reads
/// and checks the second while it still applies the first, before the
/// first is in the inbox table. The check ahead cannot see it there; the
/// batch must count what the one before it recorded in the meantime.
pub async fn an_event_id_the_batch_before_recorded_is_never_applied_again(backend: Backend) {
    let env = Env::new(&format!("{}-inbox-ahead", crate::cases::name(backend))).await;
    let a = order_events(8);
    let marker = order_events(9);
    let mut reused = a[1].clone();
    reused.event_id = a[0].event_id;
    projector_suite::produce_to(
        &env.brokers,
        &env.topic,
        0,
        &messages(&[a[0].clone(), reused, marker[0].clone()]),
    )
    .await;
    // Started after all three are on the topic, so the second is there to
    // read ahead while the first is applied.
    let running = backend.start_with(&env, &["--batch-size", "1"]);
    // One partition, batches in order: the marker comes after the reused id.
    let after = state_at(backend, &env, &[(order_id(9), 1)]).await;
    running.stop().await;
    assert_eq!(
        after[order_id(8).to_string()]["version"].as_i64(),
        Some(1),
        "an event id the batch before had recorded was applied again as version 2"
    );
}
