"""Plots the pipeline bench's per-second series (pipeline-series.csv).

Top: the outbox backlog and the versions each read model still owes, over
the steady phase (lag as the user sees it). Bottom: each service's
resident memory. Usage: plot.py SERIES_CSV OUT_PNG
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


if __name__ == "__main__":
    main()
