"""The fault injector: one fault every `gap` seconds (drawn from the seeded
generator), kinds drawn from a shuffled bag so every kind comes up before
any repeats, each fault healed by itself after its duration. Faults may
overlap (a fault's duration can outlast the gap to the next one). Every
fault targets a process this run started: a service replica, one of the
private engines, or a toxiproxy link in front of one.
"""

import asyncio
import time

import httpx

LINKS = ["pg_write", "pg_read", "kafka", "redis", "search"]

ALL_KINDS = [
    "kill:command", "kill:relay", "kill:summary", "kill:search", "kill:status", "kill:query",
    "broker-hard", "broker-clean", "postgres-restart", "postgres-crash", "redis-restart", "search-restart",
    "latency", "reset", "timeout", "cut",
]
SHORT_KINDS = ["kill:relay", "kill:summary", "broker-hard", "latency", "reset", "postgres-restart"]


class Injector:
    def __init__(self, rng, kinds, engines, toxi, fleet, log):
        self.rng = rng
        self.kinds = kinds
        self.engines = engines
        self.toxi = toxi
        self.fleet = fleet  # soak.Fleet
        self.log = log
        self.faults = []  # dicts: kind, target, start, healed, detail, error
        self.bag = []
        self.active = set()
        self.seq = 0
        self.locks = {}  # one restart of an engine at a time

    def draw(self):
        if not self.bag:
            self.bag = list(self.kinds)
            self.rng.shuffle(self.bag)
        return self.bag.pop()

    async def run(self, start_after, gap, last_start, stop_event):
        await asyncio.sleep(start_after)
        tasks = []
        async with httpx.AsyncClient() as client:
            while time.monotonic() < last_start and not stop_event.is_set():
                kind = self.draw()
                tasks.append(asyncio.create_task(self.inject(client, kind)))
                await asyncio.sleep(self.rng.uniform(*gap))
            await asyncio.gather(*tasks, return_exceptions=True)

    async def inject(self, client, kind):
        self.seq += 1
        f = {"n": self.seq, "kind": kind, "target": "", "start": time.time(), "healed": None, "detail": "", "error": None}
        self.faults.append(f)
        self.log(f"fault {self.seq}: {kind} ...")
        try:
            if kind.startswith("kill:"):
                await self.kill(f, kind.split(":", 1)[1])
            elif kind in ("broker-hard", "broker-clean"):
                f["target"] = "kafka"
                await self.engine_restart(f, "kafka", hard=kind == "broker-hard")
            elif kind in ("postgres-restart", "postgres-crash"):
                f["target"] = "postgres"
                await self.engine_restart(f, "postgres", hard=kind == "postgres-crash")
            elif kind == "redis-restart":
                f["target"] = "redis"
                await self.engine_restart(f, "redis", hard=self.rng.random() < 0.5)
            elif kind == "search-restart":
                f["target"] = "opensearch"
                await self.engine_restart(f, "opensearch", hard=self.rng.random() < 0.5)
            else:
                await self.link_fault(client, f, kind)
        except Exception as e:
            f["error"] = f"{type(e).__name__}: {e}"
            self.log(f"fault {f['n']} {kind}: error {f['error']}")
        f["healed"] = time.time()
        self.log(f"fault {f['n']}: {kind} {f['target']} {f['detail']} healed after {f['healed'] - f['start']:.1f} s")

    async def kill(self, f, service):
        reps = self.fleet.replicas(service)
        if not reps:
            f["detail"] = "no replica running"
            return
        victim = None
        if service == "relay":
            victim = await self.fleet.relay_leader()
            f["detail"] = "leader" if victim else "no leader seen: a replica"
        victim = victim or self.rng.choice(reps)
        f["target"] = victim.name
        down = self.rng.uniform(1, 6)
        victim.expect_down = True
        victim.kill9()
        f["detail"] = (f["detail"] + f", down {down:.1f} s").lstrip(", ")
        await asyncio.sleep(down)
        victim.start()
        victim.expect_down = False

    async def engine_restart(self, f, engine, hard):
        down = self.rng.uniform(2, 8)
        lock = self.locks.setdefault(engine, asyncio.Lock())
        async with lock:
            await self._restart(f, engine, hard, down)

    async def _restart(self, f, engine, hard, down):
        await self.engines.arun("kill" if hard else "down", engine)
        f["detail"] = f"{'kill -9' if hard else 'clean stop'}, down {down:.1f} s"
        await asyncio.sleep(down)
        took = await self.engines.arun("up", engine)
        f["detail"] += f", up again in {took:.1f} s"

    async def link_fault(self, client, f, kind):
        link = self.rng.choice(LINKS)
        f["target"] = link
        dur = self.rng.uniform(8, 25)
        name = f"soak{f['n']}"
        if kind == "cut":
            await self.toxi.enable(client, link, False)
            f["detail"] = f"link disabled (connections refused and cut) for {dur:.0f} s"
            await asyncio.sleep(dur)
            await self.toxi.enable(client, link, True)
            return
        if kind == "latency":
            ms = self.rng.choice([150, 300, 600, 1200])
            attrs, desc = {"latency": ms, "jitter": ms // 3}, f"+{ms} ms ±{ms // 3}"
            streams = ["downstream", "upstream"]
        elif kind == "reset":
            attrs, desc = {"timeout": self.rng.choice([0, 200, 1000])}, "connections reset (RST)"
            streams = ["downstream"]
        else:  # timeout: data stops; connections closed after the timeout (0 = never)
            ms = self.rng.choice([0, 3000])
            attrs, desc = {"timeout": ms}, f"traffic stalls{'' if ms == 0 else f', closed after {ms} ms'}"
            streams = ["downstream"]
        for s in streams:
            await self.toxi.add_toxic(client, link, f"{name}-{s}", kind if kind != "reset" else "reset_peer", attrs, s)
        f["detail"] = f"{desc} for {dur:.0f} s"
        try:
            await asyncio.sleep(dur)
        finally:
            for s in streams:
                await self.toxi.remove_toxic(client, link, f"{name}-{s}")
