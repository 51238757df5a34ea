//! A quiet system already exports what alerts are written on: each
//! projector's consumer lag per partition (0 when idle), the relay's
//! backlog and its leadership, before a single event has flowed.

use std::time::Duration;

use orderflow_testkit::eventually;
use system_tests::{Pipeline, ServiceProcess};

async fn metrics(http: &reqwest::Client, process: &ServiceProcess) -> String {
    let url = format!("{}/metrics", process.base);
    match http.get(&url).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_backlog_and_leadership_are_exported_before_any_event() {
    let pipeline = Pipeline::fresh("quiet").await;
    let relay = pipeline.start("outbox-relay", &[]).await;
    let standby = pipeline.start("outbox-relay", &[]).await;
    let projector = pipeline.start("summary-projector", &[]).await;
    let http = reqwest::Client::new();

    let text = eventually(
        "lag of all six partitions",
        Duration::from_secs(60),
        || async {
            let text = metrics(&http, &projector).await;
            let partitions = (0..6)
                .filter(|p| {
                    text.lines().any(|l| {
                        l.starts_with("projector_consumer_lag{")
                            && l.contains(&format!("partition=\"{p}\""))
                    })
                })
                .count();
            (partitions == 6).then_some(text)
        },
    )
    .await;
    for line in text
        .lines()
        .filter(|l| l.starts_with("projector_consumer_lag{"))
    {
        assert!(line.ends_with(" 0"), "an idle projector lags: {line}");
    }

    let relays = eventually(
        "the relays' backlog and leadership",
        Duration::from_secs(60),
        || async {
            let texts = [metrics(&http, &relay).await, metrics(&http, &standby).await];
            let ready = texts.iter().all(|t| {
                t.lines().any(|l| l == "relay_backlog_rows 0")
                    && t.lines()
                        .any(|l| l.starts_with("relay_leader{shard=\"0\"}"))
            });
            ready.then_some(texts)
        },
    )
    .await;
    let leading: Vec<bool> = relays
        .iter()
        .map(|t| t.lines().any(|l| l == "relay_leader{shard=\"0\"} 1"))
        .collect();
    assert_eq!(
        leading.iter().filter(|l| **l).count(),
        1,
        "exactly one relay leads, the other reports 0: {leading:?}"
    );
}
