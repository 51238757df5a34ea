//! How a rebuild says how far it is: a bar with rate and ETA on a
//! terminal, a plain line every few seconds otherwise (a Kubernetes Job's
//! log, a CI run), nothing at all in tests and benchmarks.
//!
//! The jobs only report positions ([`Progress`]); the operator's terminal
//! decides how they look, so the same job code serves every caller.

use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where a rebuild reports its phases and positions.
pub trait Progress: Send + Sync {
    /// A new phase of `total` units (orders or events) begins.
    fn phase(&self, name: &str, total: u64);
    /// `done` of the phase's units are done (absolute, not a delta).
    fn position(&self, done: u64);
    /// The phase ended with `message`.
    fn finish(&self, message: &str);
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn phase(&self, _: &str, _: u64) {}
    fn position(&self, _: u64) {}
    fn finish(&self, _: &str) {}
}

/// The progress reporter for the process's stderr: a bar on a terminal,
/// plain lines otherwise.
pub fn for_stderr() -> Box<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Box::new(Bar::default())
    } else {
        Box::new(Lines::new(Duration::from_secs(5)))
    }
}

/// An indicatif bar per phase, with rate and ETA.
#[derive(Debug, Default)]
pub struct Bar {
    bar: Mutex<Option<ProgressBar>>,
}

impl Progress for Bar {
    fn phase(&self, name: &str, total: u64) {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(name.to_owned());
        if let Some(old) = self
            .bar
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(bar)
        {
            old.finish();
        }
    }

    fn position(&self, done: u64) {
        if let Some(bar) = &*self.bar.lock().unwrap_or_else(|e| e.into_inner()) {
            if bar.length().is_some_and(|len| done > len) {
                bar.set_length(done);
            }
            bar.set_position(done);
        }
    }

    fn finish(&self, message: &str) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            bar.finish_with_message(message.to_owned());
            bar.println(message);
        }
    }
}

/// A plain line on stderr at most every `every`, with rate and ETA.
#[derive(Debug)]
pub struct Lines {
    every: Duration,
    state: Mutex<LineState>,
}

#[derive(Debug)]
struct LineState {
    name: String,
    total: u64,
    started: Instant,
    last: Instant,
}

impl Lines {
    pub fn new(every: Duration) -> Self {
        let now = Instant::now();
        Self {
            every,
            state: Mutex::new(LineState {
                name: String::new(),
                total: 0,
                started: now,
                last: now,
            }),
        }
    }
}

/// `done/total, rate/s, eta` as one line's tail.
pub fn rate_and_eta(done: u64, total: u64, elapsed: Duration) -> String {
    let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
    let eta = if rate > 0.0 && total > done {
        format!("{:.0}s", (total - done) as f64 / rate)
    } else {
        "0s".to_owned()
    };
    format!("{done}/{total} ({rate:.0}/s, eta {eta})")
}

impl Progress for Lines {
    fn phase(&self, name: &str, total: u64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.name = name.to_owned();
        state.total = total;
        state.started = Instant::now();
        state.last = state.started;
        eprintln!("{name}: {total} to do");
    }

    fn position(&self, done: u64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.last.elapsed() < self.every {
            return;
        }
        state.last = Instant::now();
        let total = state.total.max(done);
        eprintln!(
            "{}: {}",
            state.name,
            rate_and_eta(done, total, state.started.elapsed())
        );
    }

    fn finish(&self, message: &str) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        eprintln!(
            "{}: {message} in {:.1}s",
            state.name,
            state.started.elapsed().as_secs_f64()
        );
    }
}
