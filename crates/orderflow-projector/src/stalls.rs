//! Partitions paused because an event on them could not be dead-lettered.
//!
//! Dead-lettering is how a poison event gets out of the way; when it fails
//! too (the dead-letter topic is missing, or Kafka refuses the write), the
//! event can neither be applied nor skipped without losing it. Retrying it
//! in the consumer loop would stop every partition, so only its own
//! partition stops: it is paused, nothing at or after the poison's offset
//! is applied or committed there, the other partitions keep flowing, and
//! `/readyz` and `projector_partitions_paused` say which partition waits on
//! what. Once the dead letter is written, the partition is committed past
//! the poison, rewound to the next offset (what arrived meanwhile was
//! dropped and is read again; the inbox skips what had been applied) and
//! resumed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::dlq::RawMessage;

/// A partition waiting on one dead letter.
#[derive(Debug, Clone)]
pub struct Stall {
    /// The event that must reach the dead-letter topic first.
    pub message: RawMessage,
    /// Why it is being dead-lettered.
    pub reason: String,
    /// Attempts recorded in the dead letter's headers.
    pub attempts: u32,
    /// The last error writing it.
    pub error: String,
    /// When the partition stopped.
    pub since: Instant,
    /// When writing it was last tried.
    pub last_try: Instant,
}

impl Stall {
    /// The offset nothing at or after is applied or committed until the
    /// dead letter is written.
    pub fn offset(&self) -> i64 {
        self.message.offset
    }
}

/// The stalled partitions of one projector, shared with its readiness check.
#[derive(Debug, Clone, Default)]
pub struct Stalls(Arc<Mutex<BTreeMap<i32, Stall>>>);

impl Stalls {
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<i32, Stall>) -> T) -> T {
        // A panic elsewhere while holding the lock leaves a map that is
        // still consistent (every change is a single insert or remove).
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut map)
    }

    /// Stops `partition` at `stall`'s offset; an earlier stall stays.
    pub fn stop(&self, partition: i32, stall: Stall) {
        self.with(|m| {
            m.entry(partition).or_insert(stall);
        });
    }

    /// The offset `partition` is stopped at, if it is.
    pub fn offset(&self, partition: i32) -> Option<i64> {
        self.with(|m| m.get(&partition).map(Stall::offset))
    }

    /// Whether a message at `offset` on `partition` must wait.
    pub fn blocks(&self, partition: i32, offset: i64) -> bool {
        self.offset(partition).is_some_and(|stop| offset >= stop)
    }

    /// Every stall, for a retry pass.
    pub fn all(&self) -> Vec<(i32, Stall)> {
        self.with(|m| m.iter().map(|(p, s)| (*p, s.clone())).collect())
    }

    /// Records a failed retry's error.
    pub fn failed_again(&self, partition: i32, error: String) {
        self.with(|m| {
            if let Some(stall) = m.get_mut(&partition) {
                stall.error = error;
                stall.last_try = Instant::now();
            }
        });
    }

    /// Forgets `partition` (resolved, or no longer ours).
    pub fn clear(&self, partition: i32) {
        self.with(|m| {
            m.remove(&partition);
        });
    }

    /// How many partitions are stopped.
    pub fn len(&self) -> usize {
        self.with(|m| m.len())
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `/readyz`'s answer: `Err` naming each stopped partition and why.
    pub fn check(&self) -> Result<(), String> {
        let lines: Vec<String> = self.with(|m| {
            m.iter()
                .map(|(partition, s)| {
                    format!(
                        "partition {partition} paused at offset {} for {} s: \
                         dead-lettering failed ({})",
                        s.offset(),
                        s.since.elapsed().as_secs(),
                        s.error
                    )
                })
                .collect()
        });
        if lines.is_empty() {
            Ok(())
        } else {
            Err(lines.join("; "))
        }
    }
}
