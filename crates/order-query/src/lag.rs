//! How far each projector is behind, in events, for the staleness headers.
//!
//! Measured once a second from Kafka (committed offset of the projector's
//! group against the partition's high watermark), never per request.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

/// Latest lag per consumer group; `None` until measured.
#[derive(Debug, Clone, Default)]
pub struct Lag(Arc<RwLock<HashMap<String, i64>>>);

impl Lag {
    pub fn get(&self, group: &str) -> Option<i64> {
        self.0.read().ok().and_then(|m| m.get(group).copied())
    }

    fn set(&self, group: &str, lag: i64) {
        if let Ok(mut m) = self.0.write() {
            m.insert(group.to_owned(), lag);
        }
    }
}

/// Measures the lag of `groups` on `topic` every second until cancelled.
pub async fn track(
    config: ClientConfig,
    topic: String,
    groups: Vec<String>,
    lag: Lag,
    token: CancellationToken,
) -> anyhow::Result<()> {
    let consumers: Vec<(String, BaseConsumer)> = groups
        .into_iter()
        .filter_map(|g| {
            let consumer = config.clone().set("group.id", &g).create().ok()?;
            Some((g, consumer))
        })
        .collect();
    let consumers = Arc::new(consumers);
    loop {
        let (consumers, topic, lag) = (consumers.clone(), topic.clone(), lag.clone());
        let _ = tokio::task::spawn_blocking(move || {
            for (group, consumer) in consumers.iter() {
                if let Some(behind) = measure(consumer, &topic) {
                    lag.set(group, behind);
                }
            }
        })
        .await;
        tokio::select! {
            () = token.cancelled() => return Ok(()),
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

fn measure(consumer: &BaseConsumer, topic: &str) -> Option<i64> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(2))
        .ok()?;
    let partitions = metadata.topics().first()?.partitions().len() as i32;
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(2))
        .ok()?;
    let mut behind = 0;
    for element in committed.elements() {
        let (low, high) = consumer
            .fetch_watermarks(topic, element.partition(), Duration::from_secs(2))
            .ok()?;
        let position = match element.offset() {
            Offset::Offset(o) => o,
            _ => low,
        };
        behind += (high - position).max(0);
    }
    Some(behind)
}
