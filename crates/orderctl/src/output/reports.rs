//! Each command's answer, as a table (with lines around it) or as JSON.
//! The JSON shapes are the stable interface scripts rely on (README,
//! Operations): fields are added, never renamed or removed.

use orderflow_ops::backfill::BackfillReport;
use orderflow_ops::dlq::{DeadLetter, ReplayReport};
use orderflow_ops::lag::{GroupLag, OutboxBacklog};
use orderflow_ops::seed::SeedReport;
use orderflow_readstore::reconcile_runs::{KINDS, LatestCheck, ModelCheck, Run};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Format, bad, good, heading, print_json, print_lines, print_table, table};

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// What `setup` found and did, one line per part (`{"steps": [..]}`).
pub fn steps(format: Format, steps: &[orderflow_topology::Step]) {
    let lines: Vec<String> = steps.iter().map(ToString::to_string).collect();
    match format {
        Format::Json => print_json(&json!({ "steps": lines })),
        Format::Table => print_lines(&lines),
    }
}

fn backfill_json(report: &BackfillReport) -> Value {
    json!({
        "orders": report.orders,
        "written": {"summary": report.summary, "search": report.search, "status": report.status},
        "last": report.last,
        "complete": report.complete,
        "seconds": report.elapsed.as_secs_f64(),
    })
}

fn backfill_table(report: &BackfillReport) {
    print_lines(&[format!(
        "{} orders read from the write model in {:.1} s{}",
        report.orders,
        report.elapsed.as_secs_f64(),
        if report.complete {
            ""
        } else {
            " (stopped early)"
        }
    )]);
    let mut t = table(&["model", "written"], 1);
    for (model, n) in [
        ("summary", report.summary),
        ("search", report.search),
        ("status", report.status),
    ] {
        t.add_row(vec![model.to_owned(), n.to_string()]);
    }
    print_table(&t);
}

/// What a backfill did.
pub fn backfill(format: Format, report: &BackfillReport) {
    match format {
        Format::Json => print_json(&backfill_json(report)),
        Format::Table => backfill_table(report),
    }
}

/// What a seed wrote, and the backfill after it when there was one.
pub fn seed(format: Format, report: &SeedReport, fill: Option<&BackfillReport>) {
    match format {
        Format::Json => print_json(&json!({
            "seed": {
                "tag": report.tag, "orders": report.orders, "lines": report.lines,
                "customers": report.customers, "products": report.products,
                "seconds": report.elapsed.as_secs_f64(),
            },
            "backfill": fill.map(backfill_json),
        })),
        Format::Table => {
            print_lines(&[format!(
                "seeded {} orders, {} lines, {} customers, {} products (tag {}) in {:.1} s",
                report.orders,
                report.lines,
                report.customers,
                report.products,
                report.tag,
                report.elapsed.as_secs_f64()
            )]);
            if let Some(fill) = fill {
                backfill_table(fill);
            }
        }
    }
}

/// One read model's check as JSON (reconcile and status share it).
pub fn model_json(m: &ModelCheck) -> Value {
    json!({
        "model": m.model,
        "checked": m.checked,
        "drift": m.drift,
        "drifted": m.drifted(),
        "repaired": m.repaired,
        "unrepaired": m.unrepaired,
        "unresolved": m.unresolved(),
        "examples": m.examples,
    })
}

/// A reconcile run as recorded: what `reconcile` prints.
pub struct Reconciled<'a> {
    pub run_id: i64,
    pub started_at: OffsetDateTime,
    pub finished_at: OffsetDateTime,
    pub repair: bool,
    pub complete: bool,
    pub orders: u64,
    pub seconds: f64,
    pub models: &'a [ModelCheck],
}

/// The reconcile report: one row per read model, then the examples.
pub fn reconcile(format: Format, run: &Reconciled<'_>) {
    let unresolved: i64 = run.models.iter().map(ModelCheck::unresolved).sum();
    if format == Format::Json {
        return print_json(&json!({
            "run_id": run.run_id,
            "started_at": rfc3339(run.started_at),
            "finished_at": rfc3339(run.finished_at),
            "repair": run.repair,
            "complete": run.complete,
            "orders": run.orders,
            "seconds": run.seconds,
            "unresolved": unresolved,
            "models": run.models.iter().map(model_json).collect::<Vec<_>>(),
        }));
    }
    print_lines(&[format!(
        "{} orders in the write model, compared in {:.1} s (run {})",
        run.orders, run.seconds, run.run_id
    )]);
    let mut header = vec!["store", "checked"];
    header.extend(KINDS);
    header.extend(["repaired", "unrepaired"]);
    let mut t = table(&header, 1);
    for m in run.models {
        let mut row = vec![m.model.clone(), m.checked.to_string()];
        row.extend(
            KINDS
                .iter()
                .map(|k| m.drift.get(*k).copied().unwrap_or(0).to_string()),
        );
        row.extend([m.repaired.to_string(), m.unrepaired.to_string()]);
        t.add_row(row);
    }
    print_table(&t);
    let mut lines = Vec::new();
    for m in run.models {
        for e in &m.examples {
            lines.push(format!("  {}: {} {}", m.model, e.order_id, e.kind));
        }
    }
    lines.push(if unresolved == 0 {
        good("no drift left")
    } else {
        bad(&format!("{unresolved} drifted orders left"))
    });
    print_lines(&lines);
}

/// How long ago, in words: "4 min ago".
fn ago(seconds: i64) -> String {
    match seconds.max(0) {
        s if s < 120 => format!("{s} s ago"),
        s if s < 2 * 3600 => format!("{} min ago", s / 60),
        s if s < 2 * 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

/// What `status` gathered.
pub struct Status<'a> {
    pub now: OffsetDateTime,
    pub models: &'a [(&'static str, Option<LatestCheck>)],
    /// The newest run whatever its outcome (it may be going, or have failed).
    pub last_run: Option<&'a Run>,
    pub backlog: &'a OutboxBacklog,
    /// Each group's lag, or (group, why it could not be read).
    pub lags: &'a [Result<GroupLag, (String, String)>],
}

/// Each model's last drift check, the outbox backlog and the lag per group.
pub fn status(format: Format, s: &Status<'_>) {
    if format == Format::Json {
        return print_json(&json!({
            "drift_checks": s.models.iter().map(|(model, last)| json!({
                "model": model,
                "last": last.as_ref().map(|l| json!({
                    "run_id": l.run_id,
                    "finished_at": rfc3339(l.finished_at),
                    "age_seconds": (s.now - l.finished_at).whole_seconds(),
                    "repair": l.repair,
                    "check": model_json(&l.check),
                })),
            })).collect::<Vec<_>>(),
            "last_run": s.last_run.map(|r| json!({
                "run_id": r.id, "started_at": rfc3339(r.started_at),
                "finished_at": r.finished_at.map(rfc3339), "repair": r.repair,
                "complete": r.complete, "orders": r.orders, "error": r.error,
            })),
            "outbox": {"unpublished": s.backlog.unpublished, "oldest_seconds": s.backlog.oldest_seconds, "parked": s.backlog.parked},
            "groups": s.lags.iter().map(|l| match l {
                Ok(l) => json!({"group": l.group, "events": l.events(), "seconds": l.seconds()}),
                Err((group, e)) => json!({"group": group, "error": e}),
            }).collect::<Vec<_>>(),
        }));
    }
    let mut lines = vec![heading("drift checks")];
    for (model, last) in s.models {
        lines.push(match last {
            None => bad(&format!(
                "{model}: never checked (run `orderctl reconcile`)"
            )),
            Some(l) => {
                let when = ago((s.now - l.finished_at).whole_seconds());
                let left = l.check.unresolved();
                let what = format!(
                    "{model}: last drift check {when}: {left} drift ({} orders checked, run {})",
                    l.check.checked, l.run_id
                );
                if left == 0 { good(&what) } else { bad(&what) }
            }
        });
    }
    if let Some(r) = s.last_run {
        let when = ago((s.now - r.started_at).whole_seconds());
        lines.push(match (&r.finished_at, &r.error) {
            (None, _) => format!("last reconcile run {} started {when}: still running", r.id),
            (Some(_), Some(e)) => bad(&format!("last reconcile run {} started {when}: {e}", r.id)),
            (Some(_), None) => format!("last reconcile run {} started {when}: complete", r.id),
        });
    }
    lines.push(heading("pipeline"));
    lines.push(format!(
        "outbox: {} unpublished (oldest {:.1} s), {} parked",
        s.backlog.unpublished, s.backlog.oldest_seconds, s.backlog.parked
    ));
    print_lines(&lines);
    let mut t = table(&["group", "behind", "seconds"], 1);
    let mut unread = Vec::new();
    for l in s.lags {
        match l {
            Ok(l) => {
                t.add_row(vec![
                    l.group.clone(),
                    l.events().to_string(),
                    format!("{:.1}", l.seconds()),
                ]);
            }
            Err((group, e)) => unread.push(bad(&format!("{group}: lag unknown: {e}"))),
        }
    }
    print_table(&t);
    print_lines(&unread);
}

/// The outbox backlog and every group's lag per partition.
pub fn lag(format: Format, backlog: &OutboxBacklog, lags: &[GroupLag]) {
    if format == Format::Json {
        return print_json(&json!({
            "outbox": {"unpublished": backlog.unpublished, "oldest_seconds": backlog.oldest_seconds, "parked": backlog.parked},
            "groups": lags.iter().map(GroupLag::to_json).collect::<Vec<_>>(),
        }));
    }
    print_lines(&[format!(
        "outbox: {} unpublished (oldest {:.1} s), {} parked",
        backlog.unpublished, backlog.oldest_seconds, backlog.parked
    )]);
    let mut t = table(
        &[
            "group",
            "partition",
            "committed",
            "end",
            "behind",
            "seconds",
        ],
        1,
    );
    for lag in lags {
        for p in &lag.partitions {
            t.add_row(vec![
                lag.group.clone(),
                p.partition.to_string(),
                p.committed.map_or("-".to_owned(), |c| c.to_string()),
                p.high_watermark.to_string(),
                p.events.to_string(),
                format!("{:.1}", p.seconds),
            ]);
        }
    }
    print_table(&t);
}

/// The parked outbox rows.
pub fn parked(format: Format, rows: &[orderflow_outbox::ParkedRow]) {
    if format == Format::Json {
        return print_json(&json!({
            "parked": rows.iter().map(|r| json!({
                "id": r.id, "event_type": r.event_type, "version": r.aggregate_version,
                "order_id": r.aggregate_id, "event_id": r.event_id, "bytes": r.bytes,
                "parked_at": r.parked_at.to_string(), "waiting": r.waiting, "reason": r.park_reason,
            })).collect::<Vec<_>>(),
        }));
    }
    print_lines(&[format!("{} parked outbox rows", rows.len())]);
    let mut t = table(
        &[
            "row", "event", "version", "order", "event id", "bytes", "behind", "parked", "reason",
        ],
        1,
    );
    for r in rows {
        t.add_row(vec![
            r.id.to_string(),
            r.event_type.clone(),
            r.aggregate_version.to_string(),
            r.aggregate_id.to_string(),
            r.event_id.to_string(),
            r.bytes.to_string(),
            r.waiting.to_string(),
            r.parked_at.to_string(),
            r.park_reason
                .clone()
                .unwrap_or_else(|| "no reason recorded".to_owned()),
        ]);
    }
    print_table(&t);
}

/// How many parked rows were handed back to the relay.
pub fn redriven(format: Format, rows: u64) {
    match format {
        Format::Json => print_json(&json!({ "redriven": rows })),
        Format::Table => print_lines(&[format!("{rows} rows re-driven")]),
    }
}

/// The dead letters still on `topic`.
pub fn dead_letters(format: Format, topic: &str, letters: &[DeadLetter]) {
    if format == Format::Json {
        return print_json(&json!({
            "topic": topic,
            "dead_letters": letters.iter().map(|l| json!({
                "partition": l.partition, "offset": l.offset, "consumer": l.consumer,
                "reason": l.reason, "attempts": l.attempts, "replayed": l.replayed,
                "event": l.event.as_ref().map(|e| json!({
                    "event_id": e.event_id, "event_type": e.event_type,
                    "order_id": e.order_id, "version": e.version,
                    "schema_version": e.schema_version, "decode_error": e.decode_error,
                })),
            })).collect::<Vec<_>>(),
        }));
    }
    print_lines(&[format!("{} dead letters on {topic}", letters.len())]);
    let mut t = table(
        &[
            "at",
            "consumer",
            "event",
            "version",
            "order",
            "event id",
            "attempts",
            "replayed",
            "decodes now",
            "reason",
        ],
        usize::MAX,
    );
    for l in letters {
        let e = l.event.as_ref();
        t.add_row(vec![
            format!("{}:{}", l.partition, l.offset),
            l.consumer.clone().unwrap_or_else(|| "?".to_owned()),
            e.map_or_else(
                || "(unreadable)".to_owned(),
                |e| format!("{} v{}", e.event_type, e.schema_version),
            ),
            e.map_or_else(|| "?".to_owned(), |e| e.version.to_string()),
            e.map_or_else(|| "?".to_owned(), |e| e.order_id.to_string()),
            e.map_or_else(|| "?".to_owned(), |e| e.event_id.to_string()),
            l.attempts.map_or_else(|| "?".to_owned(), |a| a.to_string()),
            if l.replayed { "yes" } else { "no" }.to_owned(),
            // Whether this build reads it: "no" for a newer schema until
            // orderctl (and the projectors) are upgraded.
            e.map_or_else(
                || "no".to_owned(),
                |e| {
                    if e.decode_error.is_none() {
                        "yes"
                    } else {
                        "no"
                    }
                    .to_owned()
                },
            ),
            l.reason
                .clone()
                .unwrap_or_else(|| "no reason given".to_owned()),
        ]);
    }
    print_table(&t);
}

/// What a dead-letter replay did.
pub fn replayed(format: Format, to: &str, report: &ReplayReport) {
    match format {
        Format::Json => print_json(&json!({
            "to": to, "replayed": report.replayed, "skipped": report.skipped,
            "complete": report.complete,
        })),
        Format::Table => print_lines(&[format!(
            "{} dead letters replayed to {to}, {} of other projectors skipped",
            report.replayed, report.skipped
        )]),
    }
}

/// A trace: its verdict coloured, then the lines (or the JSON).
pub fn trace(format: Format, trace: &orderflow_ops::trace::Trace, done: bool) {
    if format == Format::Json {
        return print_json(&trace.to_json());
    }
    let mut lines = trace.lines();
    if let Some(first) = lines.first_mut() {
        *first = if done { good(first) } else { bad(first) };
    }
    print_lines(&lines);
}
