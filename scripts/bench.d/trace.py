"""Times `orderctl trace` as a user runs it: one process per order id.

Two kinds of order of the seeded dataset are traced. The seed writes
straight into the stores, so its orders have no events: their traces ask
the outbox, inboxes and stores and find no partition to ask Kafka about.
An operator traces orders that went through the pipeline, so COUNT new
orders are placed through the release order-command on the dataset while
the relay and the three projectors run on it (each a release process of
its binary with the dataset's settings from the environment); once each is
visible everywhere, its trace also reads its outbox row's partition and
offset, every inbox, and each consumer group's committed offset and
watermarks on that partition. The services keep running (idle) while the
traces are timed, as on a live system.

The baseline, interleaved order by order: a `psql` process looking the same
order up by primary key (the cost of starting a client, connecting and one
indexed read). Wall-clock times from this script. Prints one line per kind:
"KIND n p50_ms p99_ms max_ms ok" (ok: traces that exited 0, "visible
everywhere"; lookups that found the order).
Usage: trace.py BIN_DIR WRITE_URL COUNT LOG_DIR
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

SERVICES = ["order-command", "outbox-relay", "summary-projector", "search-projector",
            "status-projector"]
GROUPS = {"summary-projector": "SUMMARY_GROUP", "search-projector": "SEARCH_GROUP",
          "status-projector": "STATUS_GROUP"}


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psql(url, sql):
    return subprocess.run(["psql", "-At", url, "-c", sql], check=True, capture_output=True,
                          text=True).stdout.split()


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status
    except OSError:
        return None


def start_pipeline(bin_dir, log_dir):
    """Every service but the query API, on the dataset; returns (procs, command URL)."""
    procs, ready = [], []
    http = free_port()
    for name in SERVICES:
        ops = free_port()
        env = dict(os.environ, OPS_ADDR=f"127.0.0.1:{ops}", MIGRATE_ON_START="false")
        if name == "order-command":
            env.update(COMMAND_HTTP_ADDR=f"127.0.0.1:{http}", AUTH_DISABLED="true",
                       RATE_LIMIT_PER_SECOND="1000000", RATE_LIMIT_BURST="1000000")
        if name in GROUPS:
            env["CONSUMER_GROUP"] = os.environ[GROUPS[name]]
        log = open(os.path.join(log_dir, f"{name}.log"), "w")
        procs.append(subprocess.Popen([os.path.join(bin_dir, name)], env=env, stdout=log,
                                      stderr=subprocess.STDOUT))
        ready.append((name, f"http://127.0.0.1:{ops}/readyz"))
    deadline = time.monotonic() + 120
    for (name, url), proc in zip(ready, procs):
        while get(url) != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop(procs)
                sys.exit(f"[bench] ERROR: {name} did not become ready; see {log_dir}/{name}.log")
            time.sleep(0.2)
    return procs, f"http://127.0.0.1:{http}"


def stop(procs):
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


def place(command, url, count):
    """COUNT orders of one customer of the dataset, three products with stock each."""
    customer = psql(url, "SELECT id FROM customers ORDER BY id LIMIT 1")[0]
    products = psql(url, "SELECT product_id FROM stock ORDER BY available DESC LIMIT 30")
    ids = []
    for i in range(count):
        body = json.dumps({
            "customer_id": customer,
            "lines": [{"product_id": products[(i + k * 7) % len(products)], "quantity": 1}
                      for k in range(3)],
            "shipping_address": {"line1": "1 Trace Street", "city": "Leeds",
                                 "postal_code": "LS1 1AA", "country": "GB"},
        }).encode()
        req = urllib.request.Request(f"{command}/orders", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            ids.append(json.load(r)["order_id"])
    return ids


def visible_everywhere(orderctl, ids):
    """Waits (with a deadline) until every order's trace exits 0."""
    waiting, deadline = list(ids), time.monotonic() + 300
    while waiting:
        waiting = [o for o in waiting
                   if subprocess.run([orderctl, "trace", "--json", o], capture_output=True).returncode]
        if waiting and time.monotonic() > deadline:
            sys.exit(f"[bench] ERROR: {len(waiting)} placed orders not visible everywhere after 300 s")
        if waiting:
            time.sleep(1)


def time_traces(orderctl, url, ids, kind, took, ok):
    for order in ids:
        t0 = time.perf_counter()
        r = subprocess.run([orderctl, "trace", "--json", order], capture_output=True)
        took.setdefault(kind, []).append(time.perf_counter() - t0)
        ok[kind] = ok.get(kind, 0) + (r.returncode == 0)
        t0 = time.perf_counter()
        r = subprocess.run(["psql", "-At", url, "-c",
                            f"SELECT version FROM orders WHERE id = '{order}'"], capture_output=True)
        took.setdefault("psql", []).append(time.perf_counter() - t0)
        ok["psql"] = ok.get("psql", 0) + (r.returncode == 0 and bool(r.stdout.strip()))


def main():
    bin_dir, url, count, log_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    orderctl = os.path.join(bin_dir, "orderctl")
    seeded = psql(url, f"SELECT id FROM bench_ids ORDER BY random() LIMIT {count}")
    procs, command = start_pipeline(bin_dir, log_dir)
    try:
        placed = place(command, url, count)
        visible_everywhere(orderctl, placed)
        took, ok = {}, {}
        # Interleaved, so the machine's noise hits both kinds and the baseline.
        for a, b in zip(placed, seeded):
            time_traces(orderctl, url, [a], "trace_pipeline", took, ok)
            time_traces(orderctl, url, [b], "trace", took, ok)
    finally:
        stop(procs)
    for kind, xs in took.items():
        print(f"{kind} {len(xs)} {pct(xs, 0.5) * 1000:.1f} {pct(xs, 0.99) * 1000:.1f} "
              f"{max(xs) * 1000:.1f} {ok[kind]}")


if __name__ == "__main__":
    main()
