//! What the commands print on standard output: their answers, as lines or
//! JSON. Logs go to standard error through tracing; only this module
//! writes to standard output, so scripts can parse it.

#![allow(clippy::print_stdout)]

use orderflow_ops::dlq::DeadLetter;
use orderflow_ops::lag::{GroupLag, OutboxBacklog};
use orderflow_ops::reconcile::{self, ReconcileReport};

/// Lines on standard output: the command's answer.
pub fn print_lines(lines: &[String]) {
    for line in lines {
        println!("{line}");
    }
}

/// A JSON document on standard output, pretty-printed.
pub fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// The outbox backlog and every group's lag per partition.
pub fn print_lag(backlog: &OutboxBacklog, lags: &[GroupLag]) {
    let mut lines = vec![format!(
        "outbox: {} unpublished (oldest {:.1} s), {} parked",
        backlog.unpublished, backlog.oldest_seconds, backlog.parked
    )];
    lines.push(format!(
        "{:<28} {:>9} {:>10} {:>10} {:>9}",
        "group", "partition", "committed", "end", "behind"
    ));
    for lag in lags {
        for p in &lag.partitions {
            lines.push(format!(
                "{:<28} {:>9} {:>10} {:>10} {:>9}  {:.1} s",
                lag.group,
                p.partition,
                p.committed.map_or("-".to_owned(), |c| c.to_string()),
                p.high_watermark,
                p.events,
                p.seconds
            ));
        }
    }
    print_lines(&lines);
}

/// The parked outbox rows.
pub fn print_parked(rows: &[orderflow_outbox::ParkedRow]) {
    println!("{} parked outbox rows", rows.len());
    for r in rows {
        println!(
            "row {}: {} v{} of order {} (event {}), {} bytes, parked {}, {} behind it: {}",
            r.id,
            r.event_type,
            r.aggregate_version,
            r.aggregate_id,
            r.event_id,
            r.bytes,
            r.parked_at,
            r.waiting,
            r.park_reason.as_deref().unwrap_or("no reason recorded")
        );
    }
}

/// How many parked rows were handed back to the relay.
pub fn print_redriven(rows: u64) {
    println!("{rows} rows re-driven");
}

/// What `setup` found and did, one line per part.
pub fn print_steps(steps: &[orderflow_topology::Step]) {
    for step in steps {
        println!("{step}");
    }
}

/// The dead letters still on `topic`.
pub fn print_dead_letters(topic: &str, letters: &[DeadLetter]) {
    println!("{} dead letters on {topic}", letters.len());
    for l in letters {
        let event = l.event.as_ref().map_or_else(
            || "(unreadable envelope)".to_owned(),
            |e| {
                format!(
                    "{} v{} of order {} (event {})",
                    e.event_type, e.version, e.order_id, e.event_id
                )
            },
        );
        println!(
            "{}:{} {} {} after {} attempts{}: {}",
            l.partition,
            l.offset,
            l.consumer.as_deref().unwrap_or("?"),
            event,
            l.attempts.map_or_else(|| "?".to_owned(), |a| a.to_string()),
            if l.replayed { ", replayed" } else { "" },
            l.reason.as_deref().unwrap_or("no reason given")
        );
    }
}

/// The reconcile report: one row per read model, then the examples.
pub fn print_report(report: &ReconcileReport) {
    println!(
        "{} orders in the write model, compared in {:.1} s",
        report.orders,
        report.elapsed.as_secs_f64()
    );
    println!(
        "{:<8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>11}",
        "store",
        "checked",
        "missing",
        "behind",
        "ahead",
        "differs",
        "extra",
        "repaired",
        "unrepaired"
    );
    for (name, store) in report.stores() {
        let n = |d| store.drift.get(&d).copied().unwrap_or(0);
        use reconcile::Drift::*;
        println!(
            "{name:<8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>11}",
            store.checked,
            n(Missing),
            n(Behind),
            n(Ahead),
            n(Differs),
            n(Extra),
            store.repaired,
            store.unrepaired
        );
        for (order, drift) in &store.examples {
            println!("  {name}: {order} {}", drift.as_str());
        }
    }
}
