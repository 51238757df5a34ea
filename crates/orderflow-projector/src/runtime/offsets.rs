//! Offsets and lag: commits that move only past what is durable (and never
//! past a stalled poison), and consumer lag per assigned partition.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer as _};
use rdkafka::{Offset, TopicPartitionList};

use super::Runtime;
use crate::Projection;
use crate::dlq::RawMessage;

impl<P: Projection> Runtime<P> {
    /// Commits the next offset of every partition in the batch. Asynchronous:
    /// a commit lost to a crash or a rebalance only means redelivery, which
    /// the inbox absorbs.
    pub(super) fn commit(&self, batch: &[RawMessage]) {
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for message in batch {
            // Never past a poison that is not on the dead-letter topic yet.
            if self.stalls.blocks(message.partition, message.offset) {
                continue;
            }
            let entry = next.entry(message.partition).or_insert(0);
            *entry = (*entry).max(message.offset + 1);
        }
        let mut list = TopicPartitionList::new();
        for (partition, offset) in next {
            if let Err(err) =
                list.add_partition_offset(&self.topic, partition, Offset::Offset(offset))
            {
                tracing::warn!(error = %err, "projector.commit bad offset");
            }
        }
        if let Err(err) = self.consumer.commit(&list, CommitMode::Async) {
            tracing::warn!(projector = self.projection.name(), error = %err, "projector.commit failed; the batch may be redelivered");
        }
    }

    /// Consumer lag per assigned partition: high watermark minus where this
    /// consumer stands. Before a partition's first message the position is
    /// not known yet, so its committed offset stands in, or the low
    /// watermark when nothing was committed (`auto.offset.reset=earliest`):
    /// lag exists, as 0 on a quiet system, from the first assignment on.
    /// Runs on a blocking thread of its own; the consumer loop does not
    /// wait for it.
    pub(super) fn report_lag(&self) -> tokio::task::JoinHandle<()> {
        let consumer = self.consumer.clone();
        let topic = self.topic.clone();
        let name = self.projection.name();
        tokio::task::spawn_blocking(move || {
            let Ok(positions) = consumer.position() else {
                return;
            };
            let committed = consumer
                .committed_offsets(positions.clone(), Duration::from_secs(2))
                .ok();
            for element in positions.elements_for_topic(&topic) {
                let partition = element.partition();
                let Ok((low, high)) =
                    consumer.fetch_watermarks(&topic, partition, Duration::from_secs(1))
                else {
                    continue;
                };
                let stored = committed
                    .as_ref()
                    .and_then(|c| c.find_partition(&topic, partition))
                    .and_then(|e| match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    });
                let position = match element.offset() {
                    Offset::Offset(o) => o,
                    _ => stored.unwrap_or(low),
                };
                metrics::gauge!("projector_consumer_lag", "projector" => name, "partition" => partition.to_string())
                    .set((high - position).max(0) as f64);
            }
        })
    }
}
