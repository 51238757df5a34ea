//! Dead-lettering, and pausing only the poison's partition when that fails
//! (see `crate::stalls`), with the background retry that resumes it.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer as _};
use rdkafka::{Offset, TopicPartitionList};

use super::Runtime;
use crate::dlq::RawMessage;
use crate::stalls::Stall;
use crate::{Event, Projection};

impl<P: Projection> Runtime<P> {
    /// One bounded attempt at dead-lettering `message`.
    pub(super) async fn dead_letter(
        &self,
        message: &RawMessage,
        reason: &str,
        attempts: u32,
    ) -> Result<(), String> {
        self.dlq
            .send(message, reason, attempts)
            .await
            .map_err(|err| format!("{err:#}"))
    }

    /// Dead-letters `message`, or stops its partition at it when that fails
    /// (see `stalls`): the poison is neither lost nor in anyone else's way.
    /// Returns the outcome to count: `dead_lettered` or `stalled`.
    pub(super) async fn dead_letter_or_stall(
        &self,
        message: &RawMessage,
        reason: &str,
        attempts: u32,
    ) -> &'static str {
        let Err(error) = self.dead_letter(message, reason, attempts).await else {
            return "dead_lettered";
        };
        let name = self.projection.name();
        metrics::counter!("projector_dlq_errors_total", "projector" => name).increment(1);
        tracing::error!(
            projector = name,
            partition = message.partition,
            offset = message.offset,
            error,
            "projector.dlq dead-lettering failed; pausing this partition only"
        );
        self.stalls.stop(
            message.partition,
            Stall {
                message: message.clone(),
                reason: reason.to_owned(),
                attempts,
                error,
                since: Instant::now(),
                last_try: Instant::now(),
            },
        );
        let mut list = TopicPartitionList::new();
        list.add_partition(&self.topic, message.partition);
        if let Err(err) = self.consumer.pause(&list) {
            // Not fatal: what it still fetches is dropped until the rewind.
            tracing::warn!(projector = name, error = %err, "projector.dlq pausing the partition failed");
        }
        self.report_stalls();
        "stalled"
    }

    /// Tries each stalled partition's dead letter again, in the background
    /// so a dead-letter topic that stays away never slows the other
    /// partitions. A written one commits past the poison, rewinds the
    /// partition to the next offset and resumes it. A partition no longer
    /// assigned here is forgotten: its new owner starts from the committed
    /// offset, the poison itself.
    pub(super) async fn retry_stalls(&self) {
        let name = self.projection.name();
        let assigned: HashSet<i32> = self
            .consumer
            .assignment()
            .map(|list| {
                list.elements_for_topic(&self.topic)
                    .iter()
                    .map(|e| e.partition())
                    .collect()
            })
            .unwrap_or_default();
        let mut retries = std::mem::take(&mut *self.stall_retries.lock().await);
        for (partition, stall) in self.stalls.all() {
            if !assigned.contains(&partition) {
                tracing::info!(
                    projector = name,
                    partition,
                    "projector.dlq stalled partition revoked; its new owner retries"
                );
                if let Some(handle) = retries.remove(&partition) {
                    handle.abort();
                }
                self.stalls.clear(partition);
                continue;
            }
            let handle = match retries.remove(&partition) {
                Some(handle) if !handle.is_finished() => {
                    retries.insert(partition, handle);
                    continue;
                }
                Some(handle) => handle,
                None => {
                    if stall.last_try.elapsed() >= Duration::from_secs(1) {
                        let dlq = self.dlq.clone();
                        retries.insert(
                            partition,
                            tokio::spawn(async move {
                                dlq.send(&stall.message, &stall.reason, stall.attempts)
                                    .await
                                    .map_err(|err| format!("{err:#}"))
                            }),
                        );
                    }
                    continue;
                }
            };
            match handle.await {
                Ok(Ok(())) => self.resume_after_dead_letter(partition, &stall),
                Ok(Err(error)) => self.stalls.failed_again(partition, error),
                Err(err) => self
                    .stalls
                    .failed_again(partition, format!("retry task: {err}")),
            }
        }
        *self.stall_retries.lock().await = retries;
        self.report_stalls();
    }

    /// The stalled partition's dead letter is written: commit past it,
    /// rewind to the next offset, resume. A step that fails is done again
    /// on the next pass (the dead letter is then written once more, which
    /// `orderctl dlq replay` and the inboxes make harmless).
    pub(super) fn resume_after_dead_letter(&self, partition: i32, stall: &Stall) {
        let name = self.projection.name();
        let next = stall.offset() + 1;
        let mut list = TopicPartitionList::new();
        if list
            .add_partition_offset(&self.topic, partition, Offset::Offset(next))
            .is_err()
        {
            return;
        }
        let step = self
            .consumer
            .commit(&list, CommitMode::Sync)
            .map_err(|e| ("commit", e))
            .and_then(|()| {
                self.consumer
                    .seek(
                        &self.topic,
                        partition,
                        Offset::Offset(next),
                        Duration::from_secs(5),
                    )
                    .map_err(|e| ("rewind", e))
            })
            .and_then(|()| self.consumer.resume(&list).map_err(|e| ("resume", e)));
        match step {
            Ok(()) => {
                self.stalls.clear(partition);
                tracing::info!(
                    projector = name,
                    partition,
                    offset = stall.offset(),
                    "projector.dlq dead letter written; partition resumed"
                );
            }
            Err((what, err)) => {
                tracing::warn!(projector = name, partition, error = %err, "projector.dlq {what} after the dead letter failed; retrying");
                self.stalls
                    .failed_again(partition, format!("{what}: {err}"));
            }
        }
    }

    pub(super) fn report_stalls(&self) {
        metrics::gauge!("projector_partitions_paused", "projector" => self.projection.name())
            .set(self.stalls.len() as f64);
    }
}

/// A held or replayed event as a message, for dead-lettering.
pub(super) fn envelope_message(event: &Event) -> RawMessage {
    RawMessage {
        key: Some(event.order_id().to_string().into_bytes()),
        payload: serde_json::to_vec(&event.envelope).ok(),
        headers: vec![
            (
                "event_id".into(),
                event.envelope.event_id.to_string().into_bytes(),
            ),
            (
                "event_type".into(),
                event.envelope.event_type.clone().into_bytes(),
            ),
        ],
        partition: event.partition,
        offset: event.offset,
    }
}
