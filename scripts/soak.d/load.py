"""The open-loop command mix.

Arrivals are a Poisson process at `rate` per second whatever the answers
(open loop: a slow or dead service does not slow the generator down); each
arrival is one action on a few hundred orders. Every HTTP attempt is
recorded (time, latency, status), every acknowledged command (2xx) with the
order and the version the response named. A command whose answer is
ambiguous (timeout, reset, 5xx) is retried with the same Idempotency-Key
until it gets a definite answer or its deadline passes; it is then
"uncertain" and the order gets no more commands (the write model decides
later whether it happened).
"""

import asyncio
import json
import random
import time
import uuid

import httpx

NEXT = {"placed": ["pay"] * 9 + ["cancel"], "paid": ["ship"] * 7 + ["cancel"], "shipped": ["deliver"]}
STATUS_AFTER = {"place": "placed", "pay": "paid", "ship": "shipped", "deliver": "delivered", "cancel": "cancelled"}
EVENT_OF = {"place": "OrderPlaced", "pay": "OrderPaid", "ship": "OrderShipped", "deliver": "OrderDelivered", "cancel": "OrderCancelled"}
CARRIERS = ["DHL", "UPS", "FEDEX", "ROYALMAIL", "DPD"]


class Order:
    def __init__(self, oid, customer, lines):
        self.id = oid
        self.customer = customer
        self.lines = lines
        self.status = "placed"
        self.version = 1
        self.busy = False
        self.uncertain = False


class Load:
    def __init__(self, command_url, query_url, rng, rate, target_orders, duration, products, max_inflight=300,
                 headers=None, staff_headers=None):
        self.command_url = command_url
        # The callers' Authorization: orders and reads as a service, the
        # catalogue (products, customers) as staff.
        self.headers = headers or {}
        self.staff_headers = staff_headers or self.headers
        self.query_url = query_url
        self.rng = rng
        self.rate = rate
        self.target_orders = target_orders
        self.duration = duration
        self.products = products  # [(id, price, initial stock)]
        self.max_inflight = max_inflight
        self.orders = {}
        self.placing = 0
        self.attempts = []  # (t_sent, latency_s, status or error string, kind)
        self.acks = []  # {order, version, cmd, key, status, t}
        self.uncertain = []  # {order?, cmd, key}
        self.violations = []  # text
        self.counts = {}
        self.replayable = []  # (method, path, body, key, status, body_json)
        self.inflight = 0
        self.shed = 0
        self.stop_at = None

    def count(self, what, n=1):
        self.counts[what] = self.counts.get(what, 0) + n

    # ---- one command, retried on ambiguity with the same key ----
    async def send(self, client, method, path, body, kind, key=None, if_match=None, deadline_s=45, base=None):
        key = key or str(uuid.uuid4())
        headers = {"Idempotency-Key": key}
        if kind in ("product", "customer"):
            headers.update(self.staff_headers)
        if if_match is not None:
            headers["If-Match"] = f'"{if_match}"'
        url = (base or self.command_url) + path
        end = time.monotonic() + deadline_s
        backoff = 0.25
        while True:
            t0 = time.time()
            m0 = time.monotonic()
            try:
                r = await client.request(method, url, json=body, headers=headers, timeout=5.0)
                status = r.status_code
                self.attempts.append((t0, time.monotonic() - m0, status, kind))
                if status < 500 and status != 408 and status != 429:
                    return key, r
                outcome = status
            except httpx.HTTPError as e:
                self.attempts.append((t0, time.monotonic() - m0, type(e).__name__, kind))
                outcome = type(e).__name__
            self.count(f"ambiguous {kind}: {outcome}")
            if time.monotonic() + backoff > end:
                return key, None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 4.0)

    # ---- set-up: the catalogue ----
    async def create_products(self, client, n, tag):
        out = []
        for i in range(n):
            scarce = i == 0
            stock = 60 if scarce else 1_000_000
            price = 100 + 37 * i
            body = {"sku": f"SOAK-{tag}-{i}", "name": f"Soak product {i}", "unit_price_minor": price, "currency": "EUR", "stock": stock}
            _, r = await self.send(client, "POST", "/products", body, "product", deadline_s=60)
            if r is None or r.status_code != 201:
                raise RuntimeError(f"creating a product failed: {r and r.status_code} {r and r.text}")
            out.append((r.json()["id"], price, stock))
        self.products = out
        return out

    # ---- actions ----
    def idle_orders(self, pred=lambda o: True):
        return [o for o in self.orders.values() if not o.busy and not o.uncertain and pred(o)]

    def ack(self, order, version, cmd, key, status):
        self.acks.append({"order": order, "version": version, "cmd": cmd, "key": key, "status": status, "t": time.time()})

    async def place(self, client):
        self.placing += 1
        try:
            n = len(self.orders) + self.placing
            cbody = {"name": f"Soak Customer {uuid.uuid4().hex[:8]}", "email": f"soak-{uuid.uuid4().hex}@example.com"}
            _, r = await self.send(client, "POST", "/customers", cbody, "customer")
            if r is None or r.status_code != 201:
                self.count("customer not created" if r is None else f"customer {r.status_code}")
                return
            customer = r.json()["id"]
            k = self.rng.choice([1, 1, 2, 2, 3])
            chosen = self.rng.sample(self.products, k)
            # Now and then an order draws on the scarce product: 409
            # insufficient-stock once it runs out.
            if self.rng.random() < 0.05 and self.products[0] not in chosen:
                chosen[0] = self.products[0]
            lines = [{"product_id": p[0], "quantity": self.rng.randint(1, 3)} for p in chosen]
            body = {
                "customer_id": customer,
                "lines": lines,
                "shipping_address": {"line1": f"{n} Soak Way", "city": "London", "postal_code": "N1", "country": "GB"},
            }
            key, r = await self.send(client, "POST", "/orders", body, "place")
            if r is None:
                self.uncertain.append({"order": None, "customer": customer, "cmd": "place", "key": key})
                return
            if r.status_code == 201:
                j = r.json()
                if j.get("version") != 1:
                    self.violations.append(f"place answered version {j.get('version')}")
                o = Order(j["order_id"], customer, lines)
                self.orders[o.id] = o
                self.ack(o.id, 1, "place", key, "placed")
                self.replayable.append(("POST", "/orders", body, key, 201, j))
            elif r.status_code == 409 and "insufficient-stock" in r.text:
                self.count("rejected: insufficient-stock")
            else:
                self.violations.append(f"place: unexpected {r.status_code} {r.text[:200]}")
        finally:
            self.placing -= 1

    def body_for(self, cmd, o):
        if cmd == "pay":
            return {"payment_reference": f"PAY-{uuid.uuid4().hex[:10]}"}
        if cmd == "ship":
            return {"carrier": self.rng.choice(CARRIERS), "tracking_number": f"TRK{uuid.uuid4().hex[:12].upper()}"}
        if cmd == "cancel":
            return {"reason": "customer changed their mind"}
        return None

    async def step(self, client, o, cmd=None):
        cmd = cmd or self.rng.choice(NEXT[o.status])
        body = self.body_for(cmd, o)
        path = f"/orders/{o.id}/{cmd}"
        o.busy = True
        try:
            key, r = await self.send(client, "POST", path, body, cmd, if_match=o.version)
            if r is None:
                o.uncertain = True
                self.uncertain.append({"order": o.id, "cmd": cmd, "key": key, "from_version": o.version})
                return
            if r.status_code == 200:
                j = r.json()
                if j.get("version") != o.version + 1:
                    self.violations.append(f"{cmd} {o.id}: answered version {j.get('version')} after {o.version}")
                o.version = j["version"]
                o.status = j["status"]
                if o.status != STATUS_AFTER[cmd]:
                    self.violations.append(f"{cmd} {o.id}: answered status {o.status}")
                self.ack(o.id, o.version, cmd, key, o.status)
                self.replayable.append(("POST", path, body, key, 200, j))
            else:
                self.violations.append(f"{cmd} {o.id} at v{o.version}: unexpected {r.status_code} {r.text[:200]}")
                o.uncertain = True
        finally:
            o.busy = False

    async def probe_invalid(self, client):
        """A command the state machine must refuse (409), or a stale If-Match
        (412): the answer is a 4xx and the order does not move."""
        if self.rng.random() < 0.5:
            cands = self.idle_orders(lambda o: o.status in ("delivered", "cancelled", "shipped"))
            kind, expect = "probe-409", 409
        else:
            cands = self.idle_orders(lambda o: o.status in NEXT and o.version > 1)
            kind, expect = "probe-412", 412
        if not cands:
            return
        o = self.rng.choice(cands)
        o.busy = True
        try:
            cmd = "pay" if expect == 409 else self.rng.choice(NEXT[o.status])
            version = o.version if expect == 409 else o.version - 1
            _, r = await self.send(client, "POST", f"/orders/{o.id}/{cmd}", self.body_for(cmd, o), kind, if_match=version)
            if r is None:
                o.uncertain = True  # it must not have applied, but we cannot tell from here
                self.uncertain.append({"order": o.id, "cmd": kind, "key": None, "from_version": o.version})
                return
            self.count(f"{kind} answered {r.status_code}")
            if r.status_code != expect:
                self.violations.append(f"{kind} {o.id} ({o.status} v{o.version}, {cmd} If-Match {version}): {r.status_code} {r.text[:200]}")
                if r.status_code < 300:
                    o.uncertain = True
        finally:
            o.busy = False

    async def race(self, client):
        """pay and cancel of one placed order at once, same If-Match: exactly
        one may win."""
        cands = self.idle_orders(lambda o: o.status == "placed")
        if not cands:
            return
        o = self.rng.choice(cands)
        o.busy = True
        try:
            v = o.version
            res = await asyncio.gather(
                self.send(client, "POST", f"/orders/{o.id}/pay", self.body_for("pay", o), "race", if_match=v),
                self.send(client, "POST", f"/orders/{o.id}/cancel", self.body_for("cancel", o), "race", if_match=v),
            )
            if any(r is None for _, r in res):
                o.uncertain = True
                self.uncertain.append({"order": o.id, "cmd": "race", "key": None, "from_version": v})
                return
            wins = [(cmd, key, r) for cmd, (key, r) in zip(("pay", "cancel"), res) if r.status_code == 200]
            self.count(f"race: {len(wins)} won")
            if len(wins) != 1:
                self.violations.append(f"race on {o.id}: {len(wins)} of pay/cancel applied ({[r.status_code for _, r in res]})")
                o.uncertain = True
                return
            for (cmd, (key, r)) in zip(("pay", "cancel"), res):
                if r.status_code not in (200, 409, 412):
                    self.violations.append(f"race {cmd} on {o.id}: {r.status_code} {r.text[:200]}")
            cmd, key, r = wins[0]
            j = r.json()
            o.version, o.status = j["version"], j["status"]
            self.ack(o.id, o.version, cmd, key, o.status)
        finally:
            o.busy = False

    async def replay(self, client):
        """An acknowledged request sent again with its key: the first answer
        again, marked replayed, and nothing applied twice."""
        if not self.replayable:
            return
        method, path, body, key, status, first = self.rng.choice(self.replayable)
        _, r = await self.send(client, method, path, body, "replay", key=key)
        if r is None:
            return
        self.count("replays")
        if r.status_code != status or r.headers.get("idempotent-replayed") != "true":
            self.violations.append(f"replay {path} key {key}: {r.status_code} replayed={r.headers.get('idempotent-replayed')}")
            return
        try:
            if r.json() != first:
                self.violations.append(f"replay {path} key {key}: body {r.text[:200]} differs from {first}")
        except ValueError:
            self.violations.append(f"replay {path}: not JSON")

    async def read(self, client):
        """Read your own writes: a read with the token of an acknowledged
        command never shows an older version."""
        if not self.acks:
            return
        a = self.acks[-1 - int(self.rng.random() * min(50, len(self.acks)))]
        t0, m0 = time.time(), time.monotonic()
        try:
            r = await client.get(f"{self.query_url}/orders/{a['order']}", params={"min_version": a["version"]}, timeout=5.0)
        except httpx.HTTPError as e:
            self.attempts.append((t0, time.monotonic() - m0, type(e).__name__, "read"))
            return
        self.attempts.append((t0, time.monotonic() - m0, r.status_code, "read"))
        self.count(f"read {r.status_code}")
        if r.status_code == 200:
            v = r.json().get("version")
            if v is None or v < a["version"]:
                self.violations.append(f"read-your-own-writes: {a['order']} min_version {a['version']} answered version {v}")
        elif r.status_code in (404, 422):
            self.violations.append(f"read-your-own-writes: {a['order']} min_version {a['version']} answered {r.status_code} {r.text[:200]}")

    async def one(self, client):
        self.inflight += 1
        try:
            r = self.rng.random()
            elapsed = time.monotonic() - self.t_start
            due = 1 + self.target_orders * min(1.0, elapsed / (0.85 * self.duration))
            if r < 0.12:
                await self.read(client)
            elif r < 0.18:
                await self.replay(client)
            elif r < 0.23:
                await self.probe_invalid(client)
            elif r < 0.25:
                await self.race(client)
            else:
                placed = len(self.orders) + self.placing
                idle = self.idle_orders(lambda o: o.status in NEXT)
                # Orders are placed at a steady pace over the run, so the
                # traffic lasts as long as the faults do.
                if placed < min(self.target_orders, due):
                    await self.place(client)
                elif idle:
                    await self.step(client, self.rng.choice(idle))
                else:
                    self.count("arrival with nothing to do")
        except Exception as e:  # a bug in the generator must not pass silently
            self.violations.append(f"generator error: {type(e).__name__}: {e}")
        finally:
            self.inflight -= 1

    async def run(self, stop_event):
        limits = httpx.Limits(max_connections=400, max_keepalive_connections=50)
        async with httpx.AsyncClient(limits=limits, headers=self.headers) as client:
            self.t_start = time.monotonic()
            tasks = set()
            end = self.t_start + self.duration
            while time.monotonic() < end and not stop_event.is_set():
                await asyncio.sleep(self.rng.expovariate(self.rate))
                if self.inflight >= self.max_inflight:
                    self.shed += 1
                    continue
                t = asyncio.create_task(self.one(client))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
            self.stop_at = time.time()
            # Commands already sent finish (their retries are bounded).
            if tasks:
                await asyncio.wait(tasks, timeout=90)
