"""SOAK.md and its plot."""

import json
import os
import subprocess
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CMD_KINDS = {"place", "pay", "ship", "deliver", "cancel", "customer", "race", "replay", "probe-409", "probe-412"}
LAGS = [("summary_lag", "summary rows"), ("search_lag", "search docs"), ("status_lag", "status cache"), ("backlog", "relay backlog (rows)")]


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def ms(x):
    return "–" if x is None else f"{x * 1000:.0f}"


def maxlag(s):
    vals = [s.get(k) for k, _ in LAGS[:3] if s.get(k) is not None]
    return max(vals) if vals else None


def write(report_dir, work, result, load, samples, faults, events, checker, df, fleet, ok):
    os.makedirs(report_dir, exist_ok=True)
    t0 = result["load_start"]
    cmds = [a for a in load.attempts if a[3] in CMD_KINDS]
    good = [a for a in cmds if isinstance(a[2], int) and a[2] < 500]
    windows = [(f["start"], (f["healed"] or f["start"]) + 10) for f in faults]

    def calm(a):
        return not any(s <= a[0] <= e for s, e in windows)

    base = [a[1] for a in good if calm(a)]
    base_p50, base_p99 = pct(base, 50), pct(base, 99)
    calm_lags = [maxlag(s) for s in samples if s.get("t") and t0 and s["t"] >= t0 and calm((s["t"],)) and maxlag(s) is not None]
    threshold = max(5, 2 * (pct(calm_lags, 50) or 0))
    rows = []
    for f in faults:
        s, h = f["start"], f["healed"] or f["start"]
        win = [a for a in cmds if s <= a[0] <= h + 5]
        lat = [a[1] for a in win if isinstance(a[2], int) and a[2] < 500]
        errs = len([a for a in win if not (isinstance(a[2], int) and a[2] < 500)])
        lags = [maxlag(x) for x in samples if s <= x["t"] <= h + 60 and maxlag(x) is not None]
        backlog = [x.get("backlog") for x in samples if s <= x["t"] <= h + 60 and x.get("backlog") is not None]
        rec = None
        for x in samples:
            if x["t"] >= h and maxlag(x) is not None and maxlag(x) <= threshold and (x.get("backlog") or 0) <= threshold:
                rec = x["t"] - h
                break
        rows.append((f, len(win), errs, pct(lat, 50), pct(lat, 99), max(lags) if lags else None,
                     max(backlog) if backlog else None, rec))
    by_kind = {}
    for f in faults:
        by_kind[f["kind"]] = by_kind.get(f["kind"], 0) + 1
    conv = result.get("converged")
    last = result.get("last_fault_healed")
    r = checker.r
    fails = {name: n for name, n, _ in checker.failures}
    inv = r.get("per-order inversions on the events topic", "?")
    doubled = r.get("doubled commands", "?")
    lost = r.get("acknowledged commands missing from the write model", "?")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except Exception:
        commit = "?"

    # ---- plot ----
    png = os.path.join(report_dir, "soak.png")
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(14, 8), sharex=True, gridspec_kw={"height_ratios": [1, 1]})
    xs_ok = [a[0] - t0 for a in cmds if isinstance(a[2], int) and a[2] < 500]
    ys_ok = [a[1] * 1000 for a in cmds if isinstance(a[2], int) and a[2] < 500]
    xs_bad = [a[0] - t0 for a in cmds if not (isinstance(a[2], int) and a[2] < 500)]
    ys_bad = [max(a[1] * 1000, 1) for a in cmds if not (isinstance(a[2], int) and a[2] < 500)]
    ax1.scatter(xs_ok, ys_ok, s=3, alpha=0.35, label="command answered (< 500)", color="tab:blue")
    ax1.scatter(xs_bad, ys_bad, s=9, alpha=0.8, marker="x", label="5xx / timeout / reset (retried with its key)", color="tab:red")
    # rolling p99 per 5 s
    if cmds:
        end = max(a[0] for a in cmds) - t0
        bx, by = [], []
        b = 0.0
        while b < end:
            lat = [a[1] * 1000 for a in cmds if b <= a[0] - t0 < b + 5 and isinstance(a[2], int) and a[2] < 500]
            if lat:
                bx.append(b + 2.5)
                by.append(pct(lat, 99))
            b += 5
        ax1.plot(bx, by, color="black", lw=1, label="p99 per 5 s")
    ax1.set_yscale("log")
    ax1.set_ylabel("command latency (ms)")
    ax1.legend(loc="upper right", fontsize=7)
    for key, label in LAGS:
        pts = [(x["t"] - t0, x[key]) for x in samples if x.get(key) is not None and x["t"] >= t0 - 5]
        if pts:
            ax2.plot([p[0] for p in pts], [p[1] for p in pts], lw=1, label=label)
    ax2.set_ylabel("lag (events not yet visible)")
    ax2.set_xlabel("seconds since the load started")
    ax2.set_yscale("symlog", linthresh=10)
    ax2.legend(loc="upper right", fontsize=7)
    for f in faults:
        s, h = f["start"] - t0, (f["healed"] or f["start"]) - t0
        for ax in (ax1, ax2):
            ax.axvspan(s, max(h, s + 0.5), color="orange", alpha=0.18)
        ax1.text(s, ax1.get_ylim()[1], f"{f['n']}:{f['kind']}", rotation=90, fontsize=6, va="top", ha="right")
    for e in events:
        if e["what"] == "scale":
            for ax in (ax1, ax2):
                ax.axvline(e["t"] - t0, color="green", ls="--", lw=1)
            ax2.text(e["t"] - t0, 1, e["detail"], rotation=90, fontsize=7, color="green", va="bottom")
    if last:
        ax2.axvline(last - t0, color="grey", ls=":", lw=1)
    if conv:
        ax2.axvline(conv - t0, color="black", ls=":", lw=1)
        ax2.text(conv - t0, 1, " converged", fontsize=7)
    ax1.set_title(f"orderflow soak, seed {result['seed']}: faults shaded orange, scaling in green")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)

    # ---- markdown ----
    L = []
    w = L.append
    w("# Chaos soak report\n")
    w(f"**{'PASSED' if ok else 'FAILED'}** — `scripts/soak {' '.join(result['argv'])}` (seed {result['seed']}), "
      f"{result['started']}, commit `{commit}`, {os.cpu_count()} cores. Generated by `scripts/soak`; "
      f"repeat with `scripts/soak --seed {result['seed']} --duration {result['duration']:.0f}"
      f"{' --short' if result['short'] else ''}` (the schedule and choices follow the seed; timings do not).\n")
    w("## What ran\n")
    w(f"- {result['duration']:.0f} s of open-loop load (Poisson arrivals at {result['rate']}/s, whatever the answers) over "
      f"{len(load.orders)} orders (target {result['orders_target']}): place (a new customer each), pay, ship, deliver, cancel; "
      "replays of acknowledged requests with their Idempotency-Key; commands the state machine must refuse (409) and stale "
      "`If-Match` (412); pay and cancel racing on one order; reads with `min_version` (read your own writes).")
    w("- Private engines started by the soak on their own loopback ports (Postgres cluster, Redis with an fsynced AOF, a Kafka "
      "broker whose advertised listener is its toxiproxy port, an OpenSearch node); every service reaches them through "
      "toxiproxy links `pg_write`, `pg_read`, `kafka`, `redis`, `search`. The shared stack on 5432/6379/9092/9200 is never "
      "touched or restarted. Own databases `orderflow_soak_write`/`_read`, topic `orderflow-soak.events.v1`, alias "
      "`orderflow-soak-orders`, key prefix `orderflow-soak:`; topology by `orderctl setup`.")
    names = ", ".join(sorted(s.name for s in fleet.all()))
    w(f"- Replicas: {names}. Two relays (advisory-lock leader and standby), two summary and two search projectors in one "
      "consumer group each, the status projector scaled 1 → 3 → 1 under load. A service that exits by itself is restarted "
      "after 1 s (as an orchestrator would) and counted.")
    w(f"- A fault every {result['gap'][0]:.0f}–{result['gap'][1]:.0f} s (seeded), kinds from a shuffled bag so each kind comes "
      "up before any repeats; each heals itself; faults overlap when one outlasts the gap. After the load: every link "
      "healed, every engine and replica up, then the drain and the check.\n")
    w("## Figures\n")
    w("| figure | value |\n|---|---|")
    figs = [
        ("commands acknowledged (2xx, order and version recorded)", r.get("commands acknowledged")),
        ("HTTP attempts to the command API (incl. retries)", len(cmds)),
        ("of which 5xx / timeout / reset (each retried with its key)", len(cmds) - len(good)),
        ("acknowledged commands **lost** (missing from the write model or its outbox)", lost),
        ("**doubled** (one version acknowledged twice, a customer with two orders)", doubled),
        ("per-order **inversions** seen by a plain Kafka consumer", inv),
        ("duplicates on the topic (counted, not failed)", r.get("duplicates on the events topic (counted, not failed)")),
        ("messages on the topic / events in the outbox", f"{r.get('messages on the events topic')} / {r.get('events in the outbox')}"),
        ("faults injected", f"{len(faults)} of {len(by_kind)} kinds"),
        ("convergence after the last fault healed", f"{conv - last:.1f} s" if conv and last else "did not converge"),
        ("convergence after the load stopped (drain)", f"{conv - result['load_stop']:.1f} s" if conv else "–"),
        ("command latency p50 / p99, calm (outside fault windows)", f"{ms(base_p50)} / {ms(base_p99)} ms"),
        ("command latency p50 / p99 / max, whole run (answers < 500)", f"{ms(pct([a[1] for a in good], 50))} / {ms(pct([a[1] for a in good], 99))} / {ms(max([a[1] for a in good] or [0]))} ms"),
        ("orders placed with an ambiguous answer that committed", r.get("orders placed without an acknowledgement (ambiguous answer, committed)")),
        ("commands left uncertain (no definite answer within 45 s)", r.get("commands left uncertain (no definite answer within their deadline)")),
        ("arrivals shed (more than 300 in flight)", load.shed),
        ("services that exited by themselves (restarted)", len(result.get("unexpected_exits", []))),
        ("`orderctl reconcile` exit", r.get("orderctl reconcile exit")),
    ]
    for k, v in figs:
        w(f"| {k} | {v} |")
    w("")
    w("Generator counts: " + ", ".join(f"{k} {v}" for k, v in sorted(load.counts.items())) + ".\n")
    w("## Checks (from outside: psycopg, redis-py, plain HTTP to OpenSearch, confluent-kafka)\n")
    w("| check | failures |\n|---|---|")
    order = ["acknowledged commands missing from the write model", "acknowledged commands recorded as another event",
             "doubled commands", "orders whose outbox rows are not exactly versions 1..version", "outbox rows never published",
             "outbox rows without an order", "products whose stock is not initial minus live reservations"]
    for st in ("summary rows", "search documents", "status cache"):
        order += [f"{st}: {x}" for x in ("missing", "behind", "ahead", "fields differ", "extra")]
    order += ["per-order inversions on the events topic", "events missing from the topic", "forks (one version, two event ids)",
              "one order's events in two partitions", "messages whose key is not the order id",
              "protocol violations seen by the generator"]
    for k in order:
        w(f"| {k} | {r.get(k, '?')} |")
    w(f"| orderctl reconcile exits 0 | {'yes' if r.get('orderctl reconcile exit') == 0 else 'no (exit ' + str(r.get('orderctl reconcile exit')) + ')'} |")
    w(f"| read models converged after healing | {'yes' if conv else 'no'} |")
    w("")
    if checker.failures:
        w("### Failures\n")
        for name, n, ex in checker.failures:
            w(f"- **{name}: {n}**")
            for e in ex:
                w(f"  - `{str(e)[:300]}`")
        w("")
    if checker.notes:
        w("Notes: " + "; ".join(checker.notes) + "\n")
    w("## Faults\n")
    w(f"Window = from the fault to 5 s after it healed (latency) or 60 s after (lag). Lag = versions of the write model not yet "
      f"visible in a read model (max of the three). Recovery = time after healing until lag and relay backlog were ≤ {threshold:.0f} "
      f"(twice the calm median, at least 5). Calm command latency p50/p99: {ms(base_p50)}/{ms(base_p99)} ms.\n")
    w("| # | at (s) | kind | target | what | healed after (s) | attempts | 5xx/err | p50 ms | p99 ms | max lag | max backlog | recovered (s) |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for f, n, errs, p50, p99, ml, mb, rec in rows:
        w(f"| {f['n']} | {f['start'] - t0:.0f} | {f['kind']} | {f['target']} | {f['detail']}{' **error: ' + f['error'] + '**' if f['error'] else ''} | "
          f"{(f['healed'] or f['start']) - f['start']:.1f} | {n} | {errs} | {ms(p50)} | {ms(p99)} | {ml if ml is not None else '–'} | "
          f"{mb if mb is not None else '–'} | {'%.1f' % rec if rec is not None else '–'} |")
    w("")
    w("Faults by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items())) + ".\n")
    scale = [e for e in events if e["what"] == "scale"]
    if scale:
        w("Scaling: " + "; ".join(f"{e['detail']} at {e['t'] - t0:.0f} s" for e in scale) +
          " (lost, doubled and inversions above cover the whole run, scaling included).\n")
    ue = result.get("unexpected_exits", [])
    if ue:
        w("Services that exited by themselves: " + ", ".join(f"{e['service']} (exit {e['rc']}) at {e['t'] - t0:.0f} s" for e in ue) + ".\n")
    w("![lag and command latency over time, faults marked](soak.png)\n")
    w("## Disk full on the write database\n")
    if df is None:
        w("Skipped (`--no-diskfull`).\n")
    else:
        w("A separate Postgres cluster (Debian's `initdb`/`pg_ctl`) whose data directory is a 64 MiB tmpfs (its WAL on another volume, as in production) is the write database "
          "of an order-command of its own; after 20 orders a file fills the tmpfs, orders are sent for 20 s, the file is removed "
          "and orders are sent again; nothing is restarted by hand.\n")
        w(f"**{'PASSED' if df['passed'] else 'FAILED'}**" + ("" if df["passed"] else ": " + "; ".join(df["failures"])) + "\n")
        w("| figure | value |\n|---|---|")
        for k, v in [
            ("answers while full (status: count)", df.get("full_statuses")),
            ("refusal latency p50 / max", f"{ms(df.get('full_error_latency_p50'))} / {ms(df.get('full_error_latency_max'))} ms"),
            ("first order accepted after the space came back", f"{df['recovered_after_s']:.1f} s" if df.get("recovered_after_s") is not None else "never (60 s)"),
            ("orders / orders without exactly their outbox rows", f"{df.get('orders')} / {len(df.get('orders_without_outbox', []))}"),
            ("Postgres PANICs / crash restarts in its log", f"{df.get('postgres_panics')} / {df.get('postgres_restarts')}"),
            ("Postgres and order-command running at the end", f"{df.get('postgres_running')} / {df.get('command_running')}"),
        ]:
            w(f"| {k} | {v} |")
        ex = next((x[2] for x in df.get("phases", {}).get("full", []) if x[0] != 201 and x[2]), None)
        if ex:
            w(f"\nA refusal's body: `{ex[:300]}`\n")
        if df.get("command_log_example"):
            w(f"order-command's log for it: `{df['command_log_example'][:400]}`\n")
    w("\n## Raw data\n")
    w(f"Logs of every process, samples and attempts of this run: `{os.path.relpath(work, os.getcwd()) if work.startswith(os.getcwd()) else work}` "
      "(not committed).\n")
    with open(os.path.join(report_dir, "SOAK.md"), "w") as f:
        f.write("\n".join(L))
    with open(os.path.join(work, "data.json"), "w") as f:
        json.dump({"result": result, "faults": faults, "events": events, "samples": samples, "attempts": load.attempts,
                   "acks": load.acks, "uncertain": load.uncertain, "violations": load.violations, "checks": checker.r,
                   "failures": checker.failures, "reconcile": getattr(checker, "reconcile_out", ""),
                   "diskfull": df}, f, default=str)
