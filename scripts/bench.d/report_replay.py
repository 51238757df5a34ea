"""Section 9 of bench/REPORT.md: each projector replaying a topic, with and
without its inbox, beside its store's raw bulk rate
(crates/projector-suite/benches/projectors.rs), and the figures issue #14's
replay target is checked against.

A replay is the case a read model meets after an outage or a rebuild by
replay: the pipeline section shows a steady rate far below what a projector
can do, so only a backlog shows what the inbox and the loop cost against
the store itself.
"""

import re

# The replay target per projector: its rate with the inbox as a share of
# the raw store rate of the same round, and the inbox's cost at most 25 %.
TARGET = {"summary": 0.50, "status": 0.50, "search": 0.70}
MAX_INBOX_COST = 25.0

ROW = re.compile(
    r"^\s*(summary|search|status) \|\s+(\d+) \|\s+(\d+)\s+(\d+) \|\s+(\d+)\s+(\d+) \|"
    r"\s+([\d.]+)x\s+(-?\d+)%")


def replay_figures(output):
    """Projector -> one dict a round: raw, with (inbox) and without, each
    from process start, their steady rates, the ratio to raw and the
    inbox's cost in per cent, as the bench prints them."""
    rounds = {}
    for line in output.splitlines():
        m = ROW.match(line)
        if not m:
            continue
        name, raw, with_, without, st_with, st_without, vs_raw, cost = m.groups()
        rounds.setdefault(name, []).append(dict(
            raw=int(raw), with_=int(with_), without=int(without), st_with=int(st_with),
            st_without=int(st_without), vs_raw=float(vs_raw), cost=float(cost)))
    return rounds


def section_replay(w, output, events):
    w("## 9. Projector replay")
    w("")
    w(f"`cargo bench -p projector-suite --bench projectors` with `BENCH_EVENTS={events}`: the"
      " events of that many orders' lifecycles on a 6-partition topic, replayed by each release"
      " projector from the start with a fresh consumer group and store, once without the inbox"
      " and once with it (the configuration a deployment runs), in batches of 500. Its baseline,"
      " in the same round, is the store's raw bulk rate for the same folded state in the same"
      " batch size, with no Kafka, inbox or read-back: batched upserts (Postgres), `_bulk`"
      " (OpenSearch), pipelined `HSET` + `PUBLISH` (Redis). *inbox/s* counts from starting the"
      " process to the last offset commit, so start-up and the group join are in it; *st./s*"
      " leaves them out. *vs raw* is inbox/s over raw; *inbox cost* is how much slower the run"
      " with the inbox is than the one without. Below the table, each run's time by stage"
      " (the projector's own `projector_batch_stage_seconds`); the next batch is read ahead"
      " while one is applied, so the shares overlap and can add up past 100 %.")
    w("")
    w("```")
    w(output)
    w("```")
    w("")


def replay_rows(row, yes, output):
    """Issue #14's replay target, one row per projector, from every round."""
    rounds = replay_figures(output)
    label = ("projector replay with the inbox: summary ≥ 50 %, status ≥ 50 %, search ≥ 70 % of"
             " raw; inbox ≤ 25 %")
    if not rounds:
        row(label, "the projectors bench did not run in this run (section 9)", "not measured in this run")
        return
    for name in ("summary", "status", "search"):
        rs = rounds.get(name)
        if not rs:
            continue
        figures = "; ".join(f"{r['vs_raw']:.2f} of raw {r['raw']:,}, inbox cost {r['cost']:.0f} %" for r in rs)
        ok = all(r["vs_raw"] >= TARGET[name] and r["cost"] <= MAX_INBOX_COST for r in rs)
        row(f"{name} replay with the inbox ≥ {TARGET[name] * 100:.0f} % of raw, inbox ≤ 25 %",
            f"{figures} (per round)", yes(ok))
