//! Where a batch's time goes. Each step of the consumer loop, and each step
//! of a projection's apply, records its duration in
//! `projector_batch_stage_seconds{projector, stage}`, so profiling a running
//! projector is one scrape of `/metrics`: the projectors bench prints the
//! breakdown beside its rates, and a dashboard can show the same in
//! production. The cost is one histogram update per stage per batch.

use std::time::Instant;

/// Records the time since `started` as `stage` of one of `projector`'s
/// batches and returns now, the start of the next stage.
pub fn stage(projector: &'static str, stage: &'static str, started: Instant) -> Instant {
    let now = Instant::now();
    metrics::histogram!(
        "projector_batch_stage_seconds",
        "projector" => projector,
        "stage" => stage
    )
    .record((now - started).as_secs_f64());
    now
}

/// Counts one batch of `messages` consumed, for the mean batch size.
pub fn batch(projector: &'static str, messages: usize) {
    metrics::counter!("projector_batches_total", "projector" => projector).increment(1);
    metrics::counter!("projector_batch_messages_total", "projector" => projector)
        .increment(messages as u64);
}
