//! `orderctl trace` and `orderctl lag` (the binaries) on a running
//! pipeline: an order visible everywhere, an event held behind a gap, one
//! dead-lettered, one a stopped projector has not reached (its group's lag,
//! not another's), and an order stuck in the outbox while the relay is down.

use std::time::Duration;

use orderflow_testkit::{eventually, unique_name};
use serde_json::{Value, json};
use system_tests::{Pipeline, post, raw_envelope, text};
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(90);

/// `orderctl trace <id> --json`: its exit code and JSON; `None` while it
/// cannot find the id yet (an event still on its way to any store).
async fn trace(pipeline: &Pipeline, id: &str) -> Option<(i32, Value)> {
    let out = pipeline.orderctl(&["trace", id, "--json"]).await;
    let code = out.status.code().unwrap_or(-1);
    match serde_json::from_slice(&out.stdout) {
        Ok(value) => Some((code, value)),
        Err(_) => {
            let err = text(&out.stderr);
            assert!(
                err.contains("neither an order nor an event"),
                "trace failed: {err}"
            );
            None
        }
    }
}

/// Waits until the trace's verdict starts with `prefix`.
async fn verdict(pipeline: &Pipeline, id: &str, prefix: &str) -> (i32, Value) {
    eventually(&format!("trace {id}: {prefix}"), DEADLINE, || async {
        let (code, value) = trace(pipeline, id).await?;
        value["verdict"]
            .as_str()?
            .starts_with(prefix)
            .then_some((code, value))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_says_where_an_order_or_an_event_is() {
    let pipeline = Pipeline::fresh("trace").await;
    let command = pipeline.start("order-command", &[]).await;
    let mut relay = pipeline.start("outbox-relay", &[]).await;
    let mut projectors = Vec::new();
    for name in ["summary-projector", "search-projector", "status-projector"] {
        projectors.push(pipeline.start(name, &[]).await);
    }
    let http = reqwest::Client::new();
    let base = command.base.clone();
    let (_, customer) = post(
        &http,
        format!("{base}/customers"),
        json!({"name": "Tracy", "email": format!("{}@example.com", unique_name("t"))}),
    )
    .await;
    let (_, product) = post(&http, format!("{base}/products"),
        json!({"sku": "TRACE-1", "name": "Lens", "unit_price_minor": 500, "currency": "EUR", "stock": 100})).await;
    let order_body = json!({"customer_id": customer["id"], "lines": [{"product_id": product["id"], "quantity": 1}],
        "shipping_address": {"line1": "1 Way", "city": "Leeds", "postal_code": "LS1", "country": "GB"}});
    let (status, placed) = post(&http, format!("{base}/orders"), order_body.clone()).await;
    assert_eq!(status, 201, "{placed}");
    let order = placed["order_id"].as_str().expect("order id").to_owned();

    // 1. Visible everywhere: exit 0, every hop named.
    let (code, seen) = verdict(&pipeline, &order, "visible everywhere at v1").await;
    assert_eq!(code, 0, "{seen:#}");
    let row = &seen["outbox"][0];
    assert!(
        row["published_at"].is_string() && row["partition"].is_i64() && row["offset"].is_i64(),
        "{row}"
    );
    assert_eq!(seen["relay_leaders"], 1);
    assert_eq!(
        seen["trace_id"].as_str().map(str::len),
        Some(32),
        "{seen:#}"
    );
    for view in seen["projectors"].as_array().expect("projectors") {
        assert_eq!(view["store_version"], 1, "{view}");
        assert_eq!(
            view["processed"].as_array().map(Vec::len),
            Some(1),
            "{view}"
        );
        assert!(view["lag"]["events"].is_i64(), "{view}");
    }
    let lag = pipeline.orderctl(&["lag", "--json"]).await;
    assert!(lag.status.success(), "{}", text(&lag.stderr));
    let lag: Value = serde_json::from_slice(&lag.stdout).expect("lag json");
    assert_eq!(lag["outbox"]["unpublished"], 0, "{lag:#}");
    assert_eq!(lag["groups"].as_array().map(Vec::len), Some(3), "{lag:#}");
    for group in lag["groups"].as_array().expect("groups") {
        assert_eq!(
            group["partitions"].as_array().map(Vec::len),
            Some(6),
            "{group}"
        );
    }

    // 2. An event beyond a gap (v3 of an order at v1) is held.
    let order_id = Uuid::parse_str(&order).expect("uuid");
    let (held, shipped) = raw_envelope(
        order_id,
        3,
        "OrderShipped",
        1,
        json!({"order_id": order_id, "carrier": "DHL", "tracking_number": "T1", "shipped_at": "2026-12-01T00:00:00Z"}),
    );
    pipeline
        .produce_raw(&order_id.to_string(), shipped.to_string().as_bytes())
        .await;
    let (code, seen) = eventually("trace of the held event", DEADLINE, || async {
        let (code, value) = trace(&pipeline, &held.to_string()).await?;
        let v = value["verdict"].as_str()?.to_owned();
        ((v.starts_with("held by") || v.starts_with("parked by")) && v.contains("v3 waits for v2"))
            .then_some((code, value))
    })
    .await;
    assert_eq!(code, 3, "{seen:#}");

    // 3. An impossible event (OrderPaid as version 1) is dead-lettered.
    let stranger = Uuid::now_v7();
    let (poison, paid) = raw_envelope(
        stranger,
        1,
        "OrderPaid",
        1,
        json!({"order_id": stranger, "amount_minor": 1, "currency": "EUR", "paid_at": "2026-12-01T00:00:00Z"}),
    );
    pipeline
        .produce_raw(&stranger.to_string(), paid.to_string().as_bytes())
        .await;
    let (code, seen) = verdict(&pipeline, &poison.to_string(), "dead-lettered by").await;
    assert_eq!(code, 3);
    assert!(
        seen["verdict"]
            .as_str()
            .unwrap_or_default()
            .contains("must be OrderPlaced"),
        "{seen:#}"
    );

    // 4. With the status projector stopped, a new order reaches the other
    // two stores, and the status projector's group (only it) is behind on
    // the order's partition: each view carries its own group's lag.
    let mut status_projector = projectors.pop().expect("status projector");
    let exit = status_projector.terminate(Duration::from_secs(30)).await;
    assert!(exit.success(), "status projector exit {exit}");
    let (_, placed) = post(&http, format!("{base}/orders"), order_body.clone()).await;
    let behind = placed["order_id"].as_str().expect("order id").to_owned();
    eventually(
        "trace: only the status projector behind",
        DEADLINE,
        || async {
            let (_, value) = trace(&pipeline, &behind).await?;
            let views = value["projectors"].as_array()?;
            let view = |name: &str| views.iter().find(|v| v["name"] == name);
            let caught_up = |name: &str| {
                view(name).is_some_and(|v| v["store_version"] == 1 && v["lag"]["events"] == 0)
            };
            let status = view("status-projector")?;
            (caught_up("summary-projector")
                && caught_up("search-projector")
                && status["store_version"].is_null()
                && status["lag"]["events"].as_i64()? >= 1)
                .then_some(())
        },
    )
    .await;

    // 5. With the relay stopped, a new order is stuck in the outbox.
    let status = relay.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "relay exit {status}");
    let (_, placed) = post(&http, format!("{base}/orders"), order_body).await;
    let stuck = placed["order_id"].as_str().expect("order id").to_owned();
    let (code, seen) = verdict(&pipeline, &stuck, "stuck in the outbox").await;
    assert_eq!(code, 3);
    assert!(
        seen["verdict"]
            .as_str()
            .unwrap_or_default()
            .contains("no relay holds the shard lock"),
        "{seen:#}"
    );
    drop(projectors);
}
