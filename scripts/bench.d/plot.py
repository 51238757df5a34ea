"""Plots the pipeline bench's per-second series.

OUT_PNG, from pipeline-series.csv: top, the outbox backlog and the versions
each read model still owes over the steady phase (lag as the user sees
it); bottom, each service's resident memory. LATENCY_PNG (optional), from
pipeline-latency.csv: command and read latency percentiles (p50, p99, max)
per second of intended send time, on a log scale, so queueing shows as it
builds. Usage: plot.py SERIES_CSV OUT_PNG [LATENCY_CSV LATENCY_PNG]
"""

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    series, out = sys.argv[1], sys.argv[2]
    with open(series) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"{series}: no samples")
    t = [float(r["secs"]) for r in rows]
    fig, (lag, mem) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for col, label in [("outbox_unpublished", "outbox rows unpublished"),
                       ("summary_owed", "summary: versions owed"),
                       ("search_owed", "search: versions owed"),
                       ("status_owed", "status: versions owed")]:
        lag.plot(t, [float(r[col]) for r in rows], label=label)
    lag.set_ylabel("backlog (events)")
    lag.legend(loc="upper left")
    lag.grid(alpha=0.3)
    for col in [c for c in rows[0] if c.endswith("_rss_mib")]:
        mem.plot(t, [float(r[col]) for r in rows], label=col.removesuffix("_rss_mib"))
    mem.set_ylabel("resident memory (MiB)")
    mem.set_xlabel("seconds into the steady phase")
    mem.legend(loc="upper left", fontsize="small")
    mem.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    if len(sys.argv) == 5:
        latency(sys.argv[3], sys.argv[4])


def latency(series, out):
    with open(series) as f:
        rows = [r for r in csv.DictReader(f)]
    if not rows:
        sys.exit(f"{series}: no samples")
    t = [float(r["secs"]) for r in rows]
    fig, ax = plt.subplots(figsize=(10, 5))
    for kind, colour in [("commands", "tab:red"), ("reads", "tab:blue")]:
        # A second without operations of this kind has no percentiles.
        has = [int(r[f"{kind}_n"]) > 0 for r in rows]
        for q, style in [("p50", ":"), ("p99", "-"), ("max", "--")]:
            xs = [x for x, h in zip(t, has) if h]
            ys = [float(r[f"{kind}_{q}_ms"]) for r, h in zip(rows, has) if h]
            ax.plot(xs, ys, style, color=colour, label=f"{kind} {q}")
    ax.set_yscale("log")
    ax.set_ylabel("latency from intended send time (ms)")
    ax.set_xlabel("second of the steady phase (by intended send time)")
    ax.legend(loc="upper left", fontsize="small", ncol=2)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(out, dpi=100)


if __name__ == "__main__":
    main()
