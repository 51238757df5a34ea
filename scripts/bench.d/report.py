"""Writes bench/REPORT.md (to stdout) from one `scripts/bench` run.

Inputs: the PlaceOrder results (one line per run: concurrency, round,
variant, tps, p50 ms, p99 ms, errors), the outputs of the relay, pipeline,
rebuild and projector replay benchmarks, and the result lines of the
sections on the seeded dataset (scripts/bench.d/sections.sh: reads, checkout, trace, rates).
Every figure is printed beside its baseline from the same run, with the
ratio, as the range over the rounds and their median. The last section
checks issue #14's targets against the figures of this run.
"""

import argparse
import json
import os
import re
import platform
import statistics
import subprocess
import sys
from collections import defaultdict

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
from report_dataset import (section_checkout, section_rates, section_reads,  # noqa: E402
                            section_targets, section_trace)
from report_replay import section_replay  # noqa: E402

LABELS = {
    "http": "PlaceOrder over HTTP (wrk → release order-command)",
    "statements": "pgbench, the service's statements (its two round trips: the read, then one write statement)",
    "one": "pgbench, the same work in one statement (one round trip)",
    "statements_notify": "pgbench, the service's statements **plus a NOTIFY** (as before)",
    "one_notify": "pgbench, one statement **plus a NOTIFY**",
}


def machine():
    cores = os.cpu_count()
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        kb = int(next(l for l in f if l.startswith("MemTotal")).split()[1])
    pg = subprocess.run(["pgbench", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{cores} cores ({model}), {kb / 1024 / 1024:.1f} GiB memory, {platform.system()} {platform.release()}; {pg}"


def commit():
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    # bench/ holds this run's own outputs (the plots are written first).
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                            ":(exclude)bench"], capture_output=True, text=True).stdout.strip()
    return rev + (" (work tree with uncommitted changes outside bench/)" if dirty else "")


def text(path):
    """A bench's output, or that it did not run (a run stopped early)."""
    if not os.path.exists(path) or not open(path).read().strip():
        return "FAILED: not run in this run (it was stopped before this bench)"
    return open(path).read().rstrip()


def span(xs, fmt="{:.0f}"):
    if len(xs) == 1:
        return fmt.format(xs[0])
    return f"{fmt.format(min(xs))}–{fmt.format(max(xs))} (median {fmt.format(statistics.median(xs))})"


def dataset_lines(w, a, label="dataset"):
    """The dataset's line and the load averages; its size for the sections."""
    orders, seed_secs, backfill_secs, seeded_at, lines = open(a.dataset).read().split("|")
    orders = int(orders)
    w(f"- {label}: **{orders:,} orders** ({int(lines):,} lines) made by"
      f" `orderctl seed --orders {orders}` ({float(seed_secs):.0f} s, {orders / float(seed_secs):,.0f}"
      f" orders/s, then its backfill of all three read models {float(backfill_secs):.0f} s,"
      f" {orders / float(backfill_secs):,.0f} orders/s; seeded {seeded_at.strip()}, kept between runs)")
    w("- load average (1 min) when each section started: " + "; ".join(
        l.strip() for l in open(a.load) if l.strip()))
    w("")
    return dict(orders=orders, lines=int(lines))


def only_dataset(a, sections):
    """`scripts/bench --only …`: some sections on the dataset, without the rest."""
    out = []
    w = out.append
    w("# orderflow benchmark report: sections on the seeded dataset only")
    w("")
    w(f"- machine: {machine()}")
    w(f"- made by `{a.invocation}` at commit {commit()}")
    if a.binaries and os.path.exists(a.binaries):
        w(f"- release binaries {open(a.binaries).read().strip()}")
    w("- the sections below alone (the other sections and issue #14's targets are in"
      " [REPORT.md](REPORT.md)); the section numbers are those of the full report")
    extra = dataset_lines(w, a)
    for name in sections:
        {"reads": lambda: section_reads(w, a, extra), "checkout": lambda: section_checkout(w, a),
         "trace": lambda: section_trace(w, a), "rates": lambda: section_rates(w, a, extra)}[name]()
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--relay", required=True)
    ap.add_argument("--pipeline", required=True)
    ap.add_argument("--secs", type=int, required=True)
    ap.add_argument("--rounds", type=int, required=True)
    ap.add_argument("--invocation", required=True)
    ap.add_argument("--dataset", required=True, help="orders seed_secs backfill_secs seeded_at lines")
    ap.add_argument("--reads", required=True)
    ap.add_argument("--checkout", required=True)
    ap.add_argument("--checkout-rate", type=int, required=True)
    ap.add_argument("--checkout-secs", type=int, required=True)
    ap.add_argument("--report-rate", type=float, required=True)
    ap.add_argument("--trace", required=True)
    ap.add_argument("--rates", required=True)
    ap.add_argument("--rebuild", required=True)
    ap.add_argument("--replay", required=True, help="the projectors bench's output")
    ap.add_argument("--replay-events", type=int, required=True)
    ap.add_argument("--pipeline-json", required=True)
    ap.add_argument("--load", required=True, help="load averages while measuring, one line per section")
    ap.add_argument("--binaries", help="when the measured release binaries were built")
    ap.add_argument("--only", help="a report of these dataset sections alone (reads,checkout,trace,rates)")
    a = ap.parse_args()
    if a.only:
        print(only_dataset(a, a.only.split(",")))
        return

    runs = defaultdict(list)  # (conc, variant) -> [(tps, p50, p99, errors)]
    rounds = defaultdict(dict)  # (conc, round) -> variant -> tps
    for line in (open(a.results) if os.path.exists(a.results) else []):
        conc, rnd, key, tps, p50, p99, errors = line.split()
        runs[(int(conc), key)].append((float(tps), float(p50), float(p99), int(errors)))
        rounds[(int(conc), int(rnd))][key] = float(tps)
    relay = text(a.relay)
    pipeline = text(a.pipeline)
    replay = text(a.replay)

    out = []
    w = out.append
    w("# orderflow benchmark report")
    w("")
    w(f"- machine: {machine()}")
    w(f"- made by `{a.invocation}` at commit {commit()}")
    if a.binaries and os.path.exists(a.binaries):
        w(f"- release binaries {open(a.binaries).read().strip()}")
    w(f"- {a.secs} s per run, {a.rounds} round(s) interleaving every variant; release builds;"
      " the machine is shared (other builds run), so figures are ranges and every one has"
      " its baseline from the same round")
    w("")
    extra = dataset_lines(w, a, "dataset of sections 5–8")
    w("Sections: 1 relay, 2 PlaceOrder against pgbench, 3 the cost of NOTIFY, 4 the pipeline at"
      " a sustained rate (with latency over time), 5 joins against the summary table, 6 checkout"
      " under reporting load, 7 `orderctl trace`, 8 reconcile and rebuild rates, 9 projector"
      " replay; then issue #14's targets, met or not, and what is not measured.")
    w("")

    w("## 1. Relay drain and commit → Kafka latency")
    w("")
    w("`cargo bench -p outbox-relay --bench relay`: 100,000 outbox rows of about 1 KB"
      " (10,000 orders), 6 partitions, lz4, `acks=all`, idempotent producer. *raw* is the"
      " rdkafka producer alone sending the same keys and values with everything in flight;"
      " *depth 1* is the relay with one batch in flight (its shape before the window);"
      " *window* is the relay as configured by default (`RELAY_PIPELINE_DEPTH`). Steady:"
      " one event per transaction at a fixed rate, with the latencies the bench prints (commit →"
      " Kafka ack, transaction start → ack, the writer's own insert and commit), for a relay"
      " woken by a NOTIFY per commit, one with librdkafka's default linger of 5 ms, and the"
      " relay's defaults (no NOTIFY, 10 ms poll, `RELAY_KAFKA_LINGER` 1 ms).")
    w("")
    w("```")
    w(relay)
    w("```")
    w("")

    w("## 2. PlaceOrder over HTTP against pgbench")
    w("")
    w("Closed loop at a fixed concurrency on the same database (the catalogue of"
      " `bench/pgbench/setup.sql`: 200 products, three distinct per order): wrk against the"
      " release `order-command` (no Idempotency-Key, authentication off), and pgbench"
      " (`-M prepared`) running `bench/pgbench/place_order_statements.sql` (the statements"
      " as the service issues them) and `place_order_one_statement.sql` (the same tables,"
      " locks and outbox row in one round trip, the target's baseline). Closed-loop"
      " latencies are per-request service times, not latency under an arrival rate.")
    w("")
    if not runs:
        w("**Not run in this run** (it was stopped before this section).")
        w("")
    for conc in sorted({c for c, _ in runs}):
        w(f"### Concurrency {conc}")
        w("")
        w("| variant | per second | p50 ms | p99 ms | errors |")
        w("|---|---|---|---|---|")
        for key in LABELS:
            rs = runs.get((conc, key))
            if not rs:
                continue
            w(f"| {LABELS[key]} | {span([r[0] for r in rs])} | {span([r[1] for r in rs], '{:.2f}')}"
              f" | {span([r[2] for r in rs], '{:.2f}')} | {sum(r[3] for r in rs)} |")
        w("")
        w("| ratio, per round | " + " | ".join(f"round {r}" for r in range(1, a.rounds + 1)) + " |")
        w("|---|" + "---|" * a.rounds)
        for num, den, label in [
            ("http", "one", "HTTP / one statement (target ≥ 0.90)"),
            ("http", "statements", "HTTP / the same statements in pgbench"),
            ("statements", "one", "statements / one statement"),
        ]:
            cells = []
            for r in range(1, a.rounds + 1):
                v = rounds.get((conc, r), {})
                cells.append(f"{v[num] / v[den]:.2f}" if num in v and den in v and v[den] else "–")
            w(f"| {label} | " + " | ".join(cells) + " |")
        http = runs.get((conc, "http"))
        one = runs.get((conc, "one"))
        if http and one:
            ratios = [h[2] / o[2] for h, o in zip(http, one) if o[2]]
            w(f"| p99 HTTP / p99 one statement (target ≤ 3) | " +
              " | ".join(f"{x:.2f}" for x in ratios) + " |")
        w("")

    w("## 3. The cost of the per-transaction NOTIFY")
    w("")
    w("Postgres takes one cluster-wide lock for NOTIFY at commit and holds it through the"
      " commit record, so notifying transactions commit one at a time. The service used to"
      " notify the relay in every command's transaction; it no longer does (the relay polls"
      " every 10 ms). Same scripts, same run, with a `SELECT pg_notify('outbox', '')` added:")
    w("")
    w("| concurrency | variant | without NOTIFY /s | with NOTIFY /s | without / with, per round |")
    w("|---|---|---|---|---|")
    for conc in sorted({c for c, _ in runs}):
        for without, with_, label in [("statements", "statements_notify", "the service's statements"),
                                      ("one", "one_notify", "one statement")]:
            a_ = runs.get((conc, with_))
            b_ = runs.get((conc, without))
            if not a_ or not b_:
                continue
            per_round = []
            for r in range(1, a.rounds + 1):
                v = rounds.get((conc, r), {})
                if with_ in v and without in v and v[with_]:
                    per_round.append(f"{v[without] / v[with_]:.2f}")
            w(f"| {conc} | {label} | {span([x[0] for x in b_])} | {span([x[0] for x in a_])} |"
              f" {', '.join(per_round)} |")
    w("")
    w("The relay's side of the choice (commit → published with and without the commands'"
      " NOTIFY) is in the steady lines of section 1.")
    w("")

    w("## 4. The pipeline at a sustained rate")
    w("")
    w("`cargo bench -p system-tests --bench pipeline`: every service a release process on the"
      " topology `orderctl setup` makes (each with its own database role), driven over HTTP by"
      " an open-loop generator: operations arrive at fixed intended times whatever the system"
      " does, and each latency is measured from its intended send time, so queueing shows."
      " The mix: 35 % place, 20 % pay, 15 % ship, 10 % deliver, 5 % cancel, 15 % reads of a"
      " version a command returned (`min_version`). Reply → visible is the time from a"
      " command's reply until each read model shows its version (each store polled every"
      " 20 ms through its own adapter; search includes its refresh interval). CPU and"
      " memory per service come from `/proc`. The step test raises the rate until a read"
      " model or the outbox is more than 2 s behind at a step's end, the command p99 passes"
      " 500 ms or an operation fails. The baseline is the command service's closed-loop"
      " PlaceOrder capacity at concurrency 32 in the same run.")
    w("")
    w("```")
    w(pipeline)
    w("```")
    w("")
    if pipeline.startswith("FAILED"):
        w("The pipeline bench failed in this run (above), so there are no plots of it.")
        w("")
    else:
        pipeline_plots(w)
    reads = section_reads(w, a, extra)
    section_checkout(w, a)
    section_trace(w, a)
    section_rates(w, a, extra)
    section_replay(w, replay, a.replay_events)
    section_targets(w, a, runs, rounds, relay, reads, replay)
    print("\n".join(out))


def pipeline_plots(w):
    w("![outbox backlog, versions each read model owes, and resident memory per service, over"
      " the steady phase](pipeline.png)")
    w("")
    if not os.path.exists("bench/pipeline-latency.png"):
        w("No plot of latency percentiles over time: this run's pipeline bench wrote no"
          " `pipeline-latency.csv`.")
        w("")
        return
    w("Latency percentiles over time (the steady phase, `pipeline-latency.csv`: each second of"
      " intended send time, its operations' p50, p99 and max from the intended send time, failed"
      " ones included). Reply → visible per read model over time is not in the series yet (the"
      " bench keeps one histogram per store for the phase).")
    w("")
    w("![command and read latency p50/p99/max per second of the steady phase](pipeline-latency.png)")
    w("")


if __name__ == "__main__":
    main()
