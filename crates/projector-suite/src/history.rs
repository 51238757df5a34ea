//! The checked-in event history (`tests/fixtures/history.jsonl`) and its
//! read-model snapshots (`tests/snapshots/history/`), compared field by
//! field so a failure names what changed, not just that something did.
//!
//! `UPDATE_SNAPSHOTS=1` rewrites a snapshot from what the projector built,
//! for a change in the read models that is meant (review the diff).

use std::collections::BTreeMap;

use orderflow_contracts::Envelope;
use serde_json::Value;
use uuid::Uuid;

/// The history, in the order it goes on the topic.
pub fn events() -> Vec<Envelope> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/history.jsonl");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{path}:{}: not an envelope: {e}", n + 1))
        })
        .collect()
}

/// Where the producers were upgraded: the index of the first record
/// written at a schema version above 1.
pub fn upgrade_point(events: &[Envelope]) -> usize {
    events
        .iter()
        .position(|e| e.schema_version > 1)
        .expect("the history has records of schema version 2")
}

/// The highest version of each order in `events` that can be applied:
/// a version counts only when every earlier one of its order is present.
pub fn reachable_versions(events: &[Envelope]) -> Vec<(Uuid, i64)> {
    let mut seen: BTreeMap<Uuid, Vec<i64>> = BTreeMap::new();
    for e in events {
        seen.entry(e.aggregate_id)
            .or_default()
            .push(e.aggregate_version);
    }
    seen.into_iter()
        .map(|(order, versions)| {
            let mut reached = 0;
            while versions.contains(&(reached + 1)) {
                reached += 1;
            }
            (order, reached)
        })
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// Every JSON path at which `actual` differs from `expected`, with both
/// values (`<absent>` for a missing key).
pub fn differences(expected: &Value, actual: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk("$", expected, actual, &mut out);
    out
}

fn walk(path: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let keys: std::collections::BTreeSet<&String> = e.keys().chain(a.keys()).collect();
            for key in keys {
                let here = format!("{path}.{key}");
                match (e.get(key), a.get(key)) {
                    (Some(e), Some(a)) => walk(&here, e, a, out),
                    (Some(e), None) => out.push(format!("{here}: expected {e}, got <absent>")),
                    (None, Some(a)) => out.push(format!("{here}: expected <absent>, got {a}")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (i, (e, a)) in e.iter().zip(a).enumerate() {
                walk(&format!("{path}[{i}]"), e, a, out);
            }
        }
        (e, a) if e != a => out.push(format!("{path}: expected {e}, got {a}")),
        _ => {}
    }
}

/// Compares `state` with the snapshot `name` (a file under
/// `tests/snapshots/`), field by field; with `UPDATE_SNAPSHOTS` set it
/// writes the snapshot first.
pub fn assert_snapshot(name: &str, state: &Value) {
    let path = format!("{}/tests/snapshots/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        let pretty = serde_json::to_string_pretty(state).expect("json") + "\n";
        std::fs::write(&path, pretty).unwrap_or_else(|e| panic!("writing {path}: {e}"));
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "reading {path}: {e}; create it with UPDATE_SNAPSHOTS=1 cargo test -p projector-suite"
        )
    });
    let expected: Value = serde_json::from_str(&text).expect("snapshot is JSON");
    let differences = differences(&expected, state);
    assert!(
        differences.is_empty(),
        "{path}: {} field(s) differ from the projection of the history:\n  {}\n\
         if the change is intended, regenerate with UPDATE_SNAPSHOTS=1 cargo test -p projector-suite",
        differences.len(),
        differences.join("\n  ")
    );
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{differences, reachable_versions};

    #[test]
    fn differences_name_every_field_that_changed() {
        let expected = json!({"a": {"x": 1, "y": [1, 2]}, "b": null});
        let actual = json!({"a": {"x": 2, "y": [1, 3], "z": true}});
        assert_eq!(
            differences(&expected, &actual),
            vec![
                "$.a.x: expected 1, got 2",
                "$.a.y[1]: expected 2, got 3",
                "$.a.z: expected <absent>, got true",
                "$.b: expected null, got <absent>",
            ]
        );
        assert!(differences(&expected, &expected).is_empty());
    }

    #[test]
    fn the_history_has_what_the_replay_check_promises() {
        let events = super::events();
        let types: std::collections::BTreeSet<&str> =
            events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types.len(), 5, "every event type: {types:?}");
        let upgrade = super::upgrade_point(&events);
        assert!(events[..upgrade].iter().all(|e| e.schema_version == 1));
        assert!(
            events[..upgrade]
                .iter()
                .any(|e| e.event_type == "OrderPlaced"),
            "v1 OrderPlaced before the upgrade"
        );
        let ids: Vec<_> = events.iter().map(|e| e.event_id).collect();
        let unique: std::collections::BTreeSet<_> = ids.iter().collect();
        assert!(unique.len() < ids.len(), "redeliveries");
        let inverted = events.windows(2).any(|w| {
            w[0].aggregate_id == w[1].aggregate_id
                && w[0].aggregate_version == w[1].aggregate_version + 1
        });
        assert!(inverted, "an out-of-order pair");
        assert_eq!(reachable_versions(&events).len(), 7);
    }
}
