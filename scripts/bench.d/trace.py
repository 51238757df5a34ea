"""Times `orderctl trace` as a user runs it: one process per order id.

Each of COUNT random orders of the seeded dataset (its `bench_ids` sample)
is traced by the release orderctl (`trace --json`, settings from the
environment), and the same order is looked up by primary key by a `psql`
process, the baseline: the cost of starting a client, connecting and one
indexed read. Both are wall-clock times from this script, interleaved order
by order so the machine's noise hits both. Prints one line per kind:
"KIND n p50_ms p99_ms max_ms ok" (ok: traces that exited 0, "visible
everywhere"; lookups that found the order).
Usage: trace.py ORDERCTL WRITE_URL COUNT
"""

import subprocess
import sys
import time


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def main():
    orderctl, url, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ids = subprocess.run(
        ["psql", "-At", url, "-c", f"SELECT id FROM bench_ids ORDER BY random() LIMIT {count}"],
        check=True, capture_output=True, text=True).stdout.split()
    took = {"trace": [], "psql": []}
    ok = {"trace": 0, "psql": 0}
    for order in ids:
        t0 = time.perf_counter()
        r = subprocess.run([orderctl, "trace", "--json", order], capture_output=True)
        took["trace"].append(time.perf_counter() - t0)
        ok["trace"] += r.returncode == 0
        t0 = time.perf_counter()
        r = subprocess.run(["psql", "-At", url, "-c",
                            f"SELECT version FROM orders WHERE id = '{order}'"], capture_output=True)
        took["psql"].append(time.perf_counter() - t0)
        ok["psql"] += r.returncode == 0 and bool(r.stdout.strip())
    for kind, xs in took.items():
        print(f"{kind} {len(xs)} {pct(xs, 0.5) * 1000:.1f} {pct(xs, 0.99) * 1000:.1f} "
              f"{max(xs) * 1000:.1f} {ok[kind]}")


if __name__ == "__main__":
    main()
