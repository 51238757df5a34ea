"""The sampler (lag over time) and the checker, both with their own queries
against the engines (psycopg, redis-py, plain HTTP to OpenSearch,
confluent-kafka): nothing here uses the crates' read-back code.
"""

import datetime as dt
import json
import subprocess
import threading
import time
import uuid

import httpx
import psycopg
import redis
from confluent_kafka import Consumer, TopicPartition


def ts(v):
    """A timestamp from Postgres (datetime) or JSON (RFC 3339 text) as an
    aware datetime at microsecond precision, or None."""
    if v is None:
        return None
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.timezone.utc)
    s = str(v).replace("Z", "+00:00")
    if "." in s:
        head, rest = s.split(".", 1)
        i = 0
        while i < len(rest) and rest[i].isdigit():
            i += 1
        s = f"{head}.{rest[:i][:6].ljust(6, '0')}{rest[i:]}"
    return dt.datetime.fromisoformat(s).astimezone(dt.timezone.utc)


class Stores:
    def __init__(self, write_dsn, read_dsn, redis_url, prefix, search_url, alias, kafka, topic):
        self.write_dsn = write_dsn
        self.read_dsn = read_dsn
        self.redis_url = redis_url
        self.prefix = prefix
        self.search_url = search_url
        self.alias = alias
        self.kafka = kafka
        self.topic = topic

    def pg(self, dsn):
        c = psycopg.connect(dsn, connect_timeout=3, autocommit=True)
        c.execute("SET statement_timeout = '5s'")
        return c


class Sampler:
    """Once a second: the write model's versions against each read model's,
    the relay's backlog. Lag = versions the read model has not shown yet."""

    def __init__(self, stores, interval=1.0):
        self.s = stores
        self.interval = interval
        self.samples = []
        self.stop = threading.Event()
        self.conns = {}

    def conn(self, which):
        c = self.conns.get(which)
        if c is None or c.closed:
            c = self.s.pg(self.s.write_dsn if which == "w" else self.s.read_dsn)
            self.conns[which] = c
        return c

    def guarded(self, which, fn):
        try:
            return fn()
        except Exception:
            c = self.conns.pop(which, None)
            if c is not None:
                try:
                    c.close()
                except Exception:
                    pass
            return None

    def sample(self, rds, http):
        t = time.time()
        out = {"t": t}
        w = self.guarded("w", lambda: dict(self.conn("w").execute("SELECT id::text, version FROM orders").fetchall()))
        backlog = self.guarded("w", lambda: self.conn("w").execute("SELECT count(*) FROM outbox").fetchone()[0])
        out["backlog"] = backlog
        if w is None:
            self.samples.append(out)
            return
        total = sum(w.values())
        out["write_versions"] = total
        out["orders"] = len(w)
        summ = self.guarded("r", lambda: dict(self.conn("r").execute("SELECT order_id::text, version FROM order_summary").fetchall()))
        if summ is not None:
            out["summary_lag"] = sum(max(0, v - summ.get(k, 0)) for k, v in w.items())
        try:
            r = http.post(
                f"{self.s.search_url}/{self.s.alias}/_search",
                json={"size": 0, "track_total_hits": True, "aggs": {"v": {"sum": {"field": "version"}}}},
                timeout=3,
            )
            if r.status_code == 200:
                out["search_lag"] = max(0, total - int(r.json()["aggregations"]["v"]["value"]))
        except Exception:
            pass
        try:
            ids = list(w)
            pipe = rds.pipeline(transaction=False)
            for k in ids:
                pipe.hget(f"{self.s.prefix}order:{k}", "version")
            vals = pipe.execute()
            out["status_lag"] = sum(max(0, w[k] - int(v or 0)) for k, v in zip(ids, vals))
        except Exception:
            pass
        self.samples.append(out)

    def run(self):
        rds = redis.Redis.from_url(self.s.redis_url, socket_timeout=2, socket_connect_timeout=2)
        with httpx.Client() as http:
            while not self.stop.is_set():
                t0 = time.monotonic()
                self.sample(rds, http)
                self.stop.wait(max(0.0, self.interval - (time.monotonic() - t0)))

    def converged(self):
        """The last sample shows every read model caught up and no backlog."""
        if not self.samples:
            return False
        s = self.samples[-1]
        return s.get("backlog") == 0 and all(s.get(k) == 0 for k in ("summary_lag", "search_lag", "status_lag"))


WRITE_PROJECTION = """
SELECT o.id::text, o.customer_id::text, o.customer_name, o.customer_email, o.status, o.currency,
       o.total_minor, o.placed_at, o.delivered_at, o.cancelled_at, o.cancel_reason, o.version,
       p.payment_reference, p.paid_at, p.refund_minor,
       s.carrier, s.tracking_number, s.shipped_at,
       (SELECT count(*) FROM order_lines l WHERE l.order_id = o.id) AS line_count,
       (SELECT sum(quantity) FROM order_lines l WHERE l.order_id = o.id) AS item_count,
       (SELECT json_agg(json_build_object('line_no', line_no, 'product_id', product_id, 'sku', sku,
                         'product_name', product_name, 'unit_price_minor', unit_price_minor,
                         'quantity', quantity, 'line_total_minor', line_total_minor) ORDER BY line_no)
          FROM order_lines l WHERE l.order_id = o.id) AS lines
  FROM orders o LEFT JOIN payments p ON p.order_id = o.id LEFT JOIN shipments s ON s.order_id = o.id
"""
SCALARS = ["customer_id", "customer_name", "customer_email", "status", "currency", "total_minor",
           "line_count", "item_count", "payment_reference", "carrier", "tracking_number",
           "cancel_reason", "refund_minor", "version"]
TIMES = ["placed_at", "paid_at", "shipped_at", "delivered_at", "cancelled_at"]


def norm(v):
    if isinstance(v, str) and len(v) == 36 and v.count("-") == 4:
        return v.lower()
    if isinstance(v, str):
        return v.strip() if len(v) == 3 else v
    return v


def compare(expect, got, extra_lines_key="lines"):
    """Field names whose values differ between the write model's projection
    and a read model's row or document."""
    diffs = []
    for k in SCALARS:
        if k not in got:
            diffs.append(f"{k} absent")
            continue
        a, b = norm(expect[k]), norm(got[k])
        if a is None and b is None:
            continue
        if a != b and not (isinstance(a, (int, float)) and isinstance(b, (int, float)) and int(a) == int(b)):
            diffs.append(f"{k}: {a!r} != {b!r}")
    for k in TIMES:
        a, b = ts(expect[k]), ts(got.get(k))
        if a != b:
            diffs.append(f"{k}: {a} != {b}")
    el, gl = expect["lines"] or [], got.get(extra_lines_key) or []
    if isinstance(gl, str):
        gl = json.loads(gl)
    if len(el) != len(gl):
        diffs.append(f"lines: {len(el)} != {len(gl)}")
    else:
        for i, (a, b) in enumerate(zip(el, gl)):
            for k in ("product_id", "sku", "product_name", "unit_price_minor", "quantity", "line_total_minor"):
                if k in b and norm(a[k]) != norm(b[k]):
                    diffs.append(f"lines[{i}].{k}: {a[k]!r} != {b[k]!r}")
            if "quantity" not in b or "product_id" not in b:
                diffs.append(f"lines[{i}]: no product_id/quantity in {sorted(b)}")
    return diffs


class Checker:
    def __init__(self, stores, load, bin_dir, direct_env):
        self.s = stores
        self.load = load
        self.bin_dir = bin_dir
        self.env = direct_env
        self.r = {}  # figures
        self.failures = []  # (check, count, examples)
        self.notes = []

    def fail(self, check, items, limit=5):
        items = list(items)
        self.r[check] = len(items)
        if items:
            self.failures.append((check, len(items), items[:limit]))

    def run(self):
        self.write_side()
        self.read_models()
        self.kafka()
        self.reconcile()
        for v in self.load.violations:
            pass
        self.fail("protocol violations seen by the generator", self.load.violations, limit=10)
        return not self.failures

    # --- the write model against the acknowledgements ---
    def write_side(self):
        with self.s.pg(self.s.write_dsn) as c:
            rows = c.execute(WRITE_PROJECTION).fetchall()
            cols = [d.name for d in c.execute(WRITE_PROJECTION + " LIMIT 0").description]
            self.write = {r[0]: dict(zip(cols, r)) for r in rows}
            events = c.execute(
                # Published rows leave `outbox` for `outbox_published`.
                "SELECT aggregate_id::text, aggregate_version, event_type, event_id::text, false, parked_at IS NOT NULL FROM outbox"
                " UNION ALL SELECT aggregate_id::text, aggregate_version, event_type, event_id::text, true, false FROM outbox_published"
            ).fetchall()
            orphans = c.execute(
                "SELECT count(*) FROM (SELECT aggregate_id FROM outbox UNION ALL SELECT aggregate_id FROM outbox_published) x"
                " WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = x.aggregate_id)"
            ).fetchone()[0]
            per_customer = c.execute(
                "SELECT customer_id::text, count(*) FROM orders GROUP BY customer_id HAVING count(*) > 1"
            ).fetchall()
            stock = c.execute(
                """SELECT p.id::text, s.available,
                          coalesce(sum(l.quantity) FILTER (WHERE o.status <> 'cancelled'), 0)
                     FROM products p JOIN stock s ON s.product_id = p.id
                     LEFT JOIN order_lines l ON l.product_id = p.id
                     LEFT JOIN orders o ON o.id = l.order_id
                    GROUP BY p.id, s.available"""
            ).fetchall()
        self.events = {}
        for oid, v, etype, eid, published, parked in events:
            self.events.setdefault(oid, {})[v] = (etype, eid, published, parked)
        acks = self.load.acks
        self.r["commands acknowledged"] = len(acks)
        self.r["orders in the write model"] = len(self.write)
        self.r["events in the outbox"] = len(events)
        lost, wrong = [], []
        for a in acks:
            o = self.write.get(a["order"])
            ev = self.events.get(a["order"], {}).get(a["version"])
            if o is None or o["version"] < a["version"] or ev is None:
                lost.append(f"{a['cmd']} {a['order']} v{a['version']}")
            elif ev[0] != {"place": "OrderPlaced", "pay": "OrderPaid", "ship": "OrderShipped",
                           "deliver": "OrderDelivered", "cancel": "OrderCancelled"}[a["cmd"]]:
                wrong.append(f"{a['cmd']} {a['order']} v{a['version']} is {ev[0]} in the outbox")
        self.fail("acknowledged commands missing from the write model", lost)
        self.fail("acknowledged commands recorded as another event", wrong)
        seen, doubled = {}, []
        for a in acks:
            k = (a["order"], a["version"])
            if k in seen and seen[k] != a["key"]:
                doubled.append(f"{a['order']} v{a['version']} acknowledged to two commands")
            seen[k] = a["key"]
        doubled += [f"customer {cid} has {n} orders (one PlaceOrder each)" for cid, n in per_customer]
        self.fail("doubled commands", doubled)
        # The outbox holds exactly versions 1..version of every order, all published.
        broken, unpublished = [], []
        for oid, o in self.write.items():
            vs = self.events.get(oid, {})
            if sorted(vs) != list(range(1, o["version"] + 1)):
                broken.append(f"{oid}: version {o['version']}, outbox versions {sorted(vs)}")
            unpublished += [f"{oid} v{v}{' parked' if e[3] else ''}" for v, e in vs.items() if not e[2]]
        self.fail("orders whose outbox rows are not exactly versions 1..version", broken)
        self.fail("outbox rows never published", unpublished)
        self.fail("outbox rows without an order", [f"{orphans} rows"] if orphans else [])
        initial = {p[0]: p[2] for p in self.load.products}
        bad_stock = [f"{pid}: available {avail}, expected {initial[pid]} - {used} = {initial[pid] - used}"
                     for pid, avail, used in stock if pid in initial and avail != initial[pid] - used]
        self.fail("products whose stock is not initial minus live reservations", bad_stock)
        acked_orders = {a["order"] for a in acks}
        unknown_place = [u for u in self.load.uncertain if u["cmd"] == "place"]
        self.r["orders placed without an acknowledgement (ambiguous answer, committed)"] = len(set(self.write) - acked_orders)
        self.r["commands left uncertain (no definite answer within their deadline)"] = len(self.load.uncertain)
        self.r["PlaceOrder left uncertain"] = len(unknown_place)

    # --- each read model against the write model ---
    def read_models(self):
        ids = list(self.write)
        with self.s.pg(self.s.read_dsn) as c:
            cur = c.execute("SELECT * FROM order_summary")
            cols = [d.name for d in cur.description]
            summary = {}
            for row in cur.fetchall():
                d = dict(zip(cols, row))
                d["order_id"] = str(d["order_id"])
                d["customer_id"] = str(d["customer_id"])
                summary[d["order_id"]] = d
        docs, versions = {}, {}
        with httpx.Client() as http:
            for i in range(0, len(ids), 500):
                r = http.post(f"{self.s.search_url}/{self.s.alias}/_mget", json={"ids": ids[i:i + 500]}, timeout=30)
                r.raise_for_status()
                for d in r.json()["docs"]:
                    if d.get("found"):
                        docs[d["_id"]] = d["_source"]
                        versions[d["_id"]] = d.get("_version")
            r = http.post(f"{self.s.search_url}/{self.s.alias}/_count", json={"query": {"match_all": {}}}, timeout=30)
            search_count = r.json()["count"]
        rds = redis.Redis.from_url(self.s.redis_url, decode_responses=True)
        pipe = rds.pipeline(transaction=False)
        for k in ids:
            pipe.hgetall(f"{self.s.prefix}order:{k}")
        cache = {k: h for k, h in zip(ids, pipe.execute()) if h}
        cache_keys = sum(1 for _ in rds.scan_iter(f"{self.s.prefix}order:*", count=1000))

        def verdict(name, store, full, extra):
            missing, behind, ahead, differ = [], [], [], []
            for oid, w in self.write.items():
                g = store.get(oid)
                if g is None:
                    missing.append(oid)
                    continue
                gv = int(g["version"])
                if gv < w["version"]:
                    behind.append(f"{oid} v{gv} < v{w['version']}")
                elif gv > w["version"]:
                    ahead.append(f"{oid} v{gv} > v{w['version']}")
                else:
                    d = full(w, g)
                    if d:
                        differ.append(f"{oid}: {'; '.join(d[:4])}")
            self.fail(f"{name}: missing", missing)
            self.fail(f"{name}: behind", behind)
            self.fail(f"{name}: ahead", ahead)
            self.fail(f"{name}: fields differ", differ)
            self.fail(f"{name}: extra", extra)

        verdict("summary rows", summary, compare, [k for k in summary if k not in self.write])
        bad_ext = [f"{k}: _version {versions[k]} != version {d['version']}" for k, d in docs.items() if versions.get(k) != d["version"]]
        verdict("search documents", docs, compare,
                ([f"{search_count - len(docs)} documents beyond the write model's orders"] if search_count > len(docs) else []) + bad_ext)

        def status_cmp(w, g):
            return [f"status: {w['status']} != {g.get('status')}"] if g.get("status") != w["status"] else []

        verdict("status cache", cache, status_cmp,
                [f"{cache_keys - len(cache)} keys beyond the write model's orders"] if cache_keys > len(cache) else [])
        if summary:
            self.sample_line_keys = sorted((next(iter(summary.values()))["lines"] or [{}])[0])

    # --- a plain Kafka consumer of the events topic ---
    def kafka(self):
        c = Consumer({
            "bootstrap.servers": self.s.kafka,
            "group.id": f"soak-check-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        })
        md = c.list_topics(self.s.topic, timeout=30)
        parts = sorted(md.topics[self.s.topic].partitions)
        highs = {p: c.get_watermark_offsets(TopicPartition(self.s.topic, p), timeout=30)[1] for p in parts}
        c.assign([TopicPartition(self.s.topic, p, 0) for p in parts])
        remaining = {p for p in parts if highs[p] > 0}
        msgs = 0
        seen = {}  # order -> {version: event_id}
        top = {}  # order -> highest version so far
        where = {}  # order -> partition
        dups, inversions, forks, split, badkey = 0, [], [], [], []
        deadline = time.monotonic() + 180
        while remaining and time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    if m.offset() >= highs[m.partition()]:
                        remaining.discard(m.partition())
                continue
            msgs += 1
            if m.offset() + 1 >= highs[m.partition()]:
                remaining.discard(m.partition())
            e = json.loads(m.value())
            oid, v, eid = e["aggregate_id"], e["aggregate_version"], e["event_id"]
            if (m.key() or b"").decode() != oid:
                badkey.append(f"{oid} v{v} key {m.key()!r}")
            if where.setdefault(oid, m.partition()) != m.partition():
                split.append(f"{oid} in partitions {where[oid]} and {m.partition()}")
            vs = seen.setdefault(oid, {})
            if v in vs:
                dups += 1
                if vs[v] != eid:
                    forks.append(f"{oid} v{v}: event ids {vs[v]} and {eid}")
                continue
            if v <= top.get(oid, 0):
                inversions.append(f"{oid} v{v} after v{top[oid]} (partition {m.partition()} offset {m.offset()})")
            vs[v] = eid
            top[oid] = max(top.get(oid, 0), v)
        c.close()
        if remaining:
            self.notes.append(f"the Kafka read stopped at its deadline with partitions {sorted(remaining)} unread")
        missing = []
        for oid, w in self.write.items():
            got = seen.get(oid, {})
            for v in range(1, w["version"] + 1):
                if v not in got:
                    missing.append(f"{oid} v{v}")
                elif self.events[oid][v][1] != got[v]:
                    forks.append(f"{oid} v{v}: outbox event {self.events[oid][v][1]}, topic {got[v]}")
        self.r["messages on the events topic"] = msgs
        self.r["duplicates on the events topic (counted, not failed)"] = dups
        self.fail("per-order inversions on the events topic", inversions)
        self.fail("events missing from the topic", missing)
        self.fail("forks (one version, two event ids)", forks)
        self.fail("one order's events in two partitions", split)
        self.fail("messages whose key is not the order id", badkey)

    def reconcile(self):
        t = time.monotonic()
        p = subprocess.run([f"{self.bin_dir}/orderctl", "reconcile"], env=self.env, capture_output=True, text=True, timeout=300)
        self.r["orderctl reconcile exit"] = p.returncode
        self.reconcile_out = (p.stdout + p.stderr)[-3000:]
        self.r["orderctl reconcile seconds"] = round(time.monotonic() - t, 1)
        if p.returncode != 0:
            self.failures.append(("orderctl reconcile exit code", p.returncode, self.reconcile_out.splitlines()[-8:]))
