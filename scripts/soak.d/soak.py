"""orderflow chaos soak: load + overlapping faults, then an outside check.

Run by scripts/soak (which installs the venv and toxiproxy); see its header.
"""

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

import httpx
import psycopg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from procs import Engines, Service, Supervisor, Toxiproxy, free_ports  # noqa: E402
from load import Load  # noqa: E402
from faults import ALL_KINDS, SHORT_KINDS, Injector  # noqa: E402
from check import Checker, Sampler, Stores  # noqa: E402
import diskfull  # noqa: E402
import tokens  # noqa: E402
import access  # noqa: E402
import report  # noqa: E402

BINARIES = ["order-command", "outbox-relay", "summary-projector", "search-projector", "status-projector",
            "order-query", "orderctl"]
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
T0 = time.time()


def log(msg):
    print(f"[soak {time.time() - T0:6.1f}s] {msg}", flush=True)


class Fleet:
    """Every service replica of the run, by kind."""

    def __init__(self):
        self.by_kind = {}

    def add(self, kind, svc):
        self.by_kind.setdefault(kind, []).append(svc)

    def all(self):
        return [s for v in self.by_kind.values() for s in v]

    def replicas(self, kind):
        return [s for s in self.by_kind.get(kind, []) if not s.retired and s.alive()]

    async def relay_leader(self):
        async with httpx.AsyncClient() as c:
            for s in self.replicas("relay"):
                try:
                    r = await c.get(s.ready_url.replace("/readyz", "/metrics"), timeout=2)
                    for line in r.text.splitlines():
                        if line.startswith("relay_leader{") and line.rstrip().endswith(" 1"):
                            return s
                except Exception:
                    pass
        return None


async def wait_ready(services, timeout=180):
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as c:
        pending = list(services)
        while pending:
            pending = [s for s in pending if not await s.ready(c)]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("not ready: " + ", ".join(f"{s.name} (log {s.log})" for s in pending))
            await asyncio.sleep(0.5)


def main():
    ap = argparse.ArgumentParser(prog="scripts/soak")
    ap.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    ap.add_argument("--short", action="store_true", help="CI form: fewer fault kinds, fewer orders")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--orders", type=int, default=None, help="orders to place (default 600, short 120)")
    ap.add_argument("--rate", type=float, default=None, help="arrivals per second (default 6)")
    ap.add_argument("--gap", default=None, help="seconds between faults, MIN:MAX (default 20:34)")
    ap.add_argument("--kinds", default=None, help="comma-separated fault kinds (default: all; short: a subset)")
    ap.add_argument("--no-diskfull", action="store_true", help="skip the disk-full scenario")
    ap.add_argument("--report-dir", default=None, help="where SOAK.md and soak.png go (default: the work dir)")
    ap.add_argument("--work-dir", default=os.path.join(REPO, "target", "soak"))
    ap.add_argument("--bin-dir", default=os.environ.get("ORDERFLOW_BIN_DIR", os.path.join(REPO, "target", "debug")))
    ap.add_argument("--toxiproxy", required=True, help="toxiproxy server binary")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1, 2**31)
    rng = random.Random(seed)
    orders = a.orders or (120 if a.short else 600)
    rate = a.rate or 6.0
    gap = tuple(float(x) for x in (a.gap or "20:34").split(":"))
    kinds = a.kinds.split(",") if a.kinds else (SHORT_KINDS if a.short else ALL_KINDS)
    for k in kinds:
        if k not in ALL_KINDS:
            sys.exit(f"unknown fault kind {k}; kinds: {', '.join(ALL_KINDS)}")
    work = os.path.abspath(a.work_dir)
    report_dir = os.path.abspath(a.report_dir or work)
    log(f"seed {seed} (repeat with --seed {seed}); {a.duration:.0f} s of load at {rate}/s over {orders} orders; "
        f"a fault every {gap[0]:.0f}-{gap[1]:.0f} s from {len(kinds)} kinds")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "logs"), exist_ok=True)
    logs = os.path.join(work, "logs")
    # One build for the whole run: hard links to the binaries as they are
    # now, so a `cargo build` meanwhile cannot swap a replica's binary
    # under a restart.
    snap = os.path.join(work, "bin")
    os.makedirs(snap)
    for b in BINARIES:
        src = os.path.join(a.bin_dir, b)
        if not os.access(src, os.X_OK):
            sys.exit(f"{src} is missing: cargo build --workspace --bins --locked (or set ORDERFLOW_BIN_DIR)")
        try:
            os.link(src, os.path.join(snap, b))
        except OSError:
            shutil.copy2(src, os.path.join(snap, b))
    a.bin_dir = snap
    stack_dir = os.path.join(REPO, ".stack", "soak")
    os.makedirs(stack_dir, exist_ok=True)

    (pg, rd, kf, kfc, kadv, osp, ost, toxi_api, l_pgw, l_pgr, l_rd, l_os, p_cmd, p_query,
     p_relay1, p_relay2, p_sum1, p_sum2, p_sea1, p_sea2, p_st1, p_st2, p_st3) = free_ports(23)
    eng_env = dict(os.environ, ORDERFLOW_STACK_DIR=stack_dir, ORDERFLOW_JARS_DIR=os.path.join(REPO, ".stack", "jars"),
                   PG_PORT=str(pg), REDIS_PORT=str(rd), KAFKA_PORT=str(kf), KAFKA_CONTROLLER_PORT=str(kfc),
                   SOAK_KAFKA_ADVERTISED_PORT=str(kadv), OPENSEARCH_PORT=str(osp), OPENSEARCH_TRANSPORT_PORT=str(ost))
    engines = Engines(eng_env, os.path.join(logs, "engines.log"))
    toxi = Toxiproxy(a.toxiproxy, toxi_api, logs)
    fleet = Fleet()
    events = []  # scale events, unexpected exits
    result = {"seed": seed, "duration": a.duration, "short": a.short, "rate": rate, "orders_target": orders,
              "gap": gap, "kinds": kinds, "argv": [x for i, x in enumerate(sys.argv[1:]) if x not in ("--bin-dir", "--toxiproxy") and sys.argv[i] not in ("--bin-dir", "--toxiproxy")], "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    ok = False
    stop_event = None
    sampler = None

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    write_db, read_db = "orderflow_soak_write", "orderflow_soak_read"
    topic, prefix, alias = "orderflow-soak.events.v1", "orderflow-soak:", "orderflow-soak-orders"
    direct = {
        "WRITE_DATABASE_URL": f"postgres://orderflow@127.0.0.1:{pg}/{write_db}",
        "READ_DATABASE_URL": f"postgres://orderflow@127.0.0.1:{pg}/{read_db}",
        "KAFKA_BROKERS": f"127.0.0.1:{kf}",
        "REDIS_URL": f"redis://127.0.0.1:{rd}",
        "SEARCH_URL": f"http://127.0.0.1:{osp}",
    }
    proxied = {
        "WRITE_DATABASE_URL": f"postgres://orderflow@127.0.0.1:{l_pgw}/{write_db}",
        "READ_DATABASE_URL": f"postgres://orderflow@127.0.0.1:{l_pgr}/{read_db}",
        "KAFKA_BROKERS": f"127.0.0.1:{kadv}",
        "REDIS_URL": f"redis://127.0.0.1:{l_rd}",
        "SEARCH_URL": f"http://127.0.0.1:{l_os}",
    }
    # Authentication on, as deployed (a fresh secret per run, tokens from
    # orderctl); the per-subject rate limit is lifted because the load is one
    # service subject at the soak's rate (the limiter has its own tests).
    common = dict(os.environ, AUTH_HS256_SECRET=tokens.secret(), RATE_LIMIT_PER_SECOND="1000000",
                  RATE_LIMIT_BURST="1000000", EVENTS_TOPIC=topic, REDIS_KEY_PREFIX=prefix, SEARCH_ALIAS=alias, MIGRATE_ON_START="false",
                  LOG_FORMAT="text", SHUTDOWN_GRACE="5s", RUST_LOG=os.environ.get("SOAK_RUST_LOG", "info,sqlx=warn,rdkafka=warn"))
    passwords = access.passwords()
    direct_env = dict(common, **direct, **passwords)
    try:
        # Leftovers of an interrupted run (pid files in the soak's own stack dir).
        for e in ("postgres", "redis", "kafka", "opensearch"):
            try:
                engines.run("down", e, timeout=90)
            except Exception:
                pass
        shutil.rmtree(os.path.join(stack_dir, "kafka"), ignore_errors=True)
        shutil.rmtree(os.path.join(stack_dir, "redis"), ignore_errors=True)
        toxi.start()
        for name, listen, up in (("pg_write", l_pgw, pg), ("pg_read", l_pgr, pg), ("kafka", kadv, kf),
                                 ("redis", l_rd, rd), ("search", l_os, osp)):
            toxi.link(name, listen, up)
        t = time.monotonic()
        engines.run("up", "postgres")
        engines.run("up", "redis")
        errs = []

        def up(e):
            try:
                engines.run("up", e)
            except Exception as ex:
                errs.append(ex)

        th = [threading.Thread(target=up, args=(e,)) for e in ("kafka", "opensearch")]
        for x in th:
            x.start()
        for x in th:
            x.join()
        if errs:
            raise errs[0]
        log(f"private engines up in {time.monotonic() - t:.0f} s (postgres {pg}, redis {rd}, kafka {kf} advertised via proxy {kadv}, opensearch {osp})")
        admin = f"postgres://postgres@127.0.0.1:{pg}/postgres"
        with psycopg.connect(admin, autocommit=True) as c:
            for db in (write_db, read_db):
                c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
                c.execute(f'CREATE DATABASE "{db}" OWNER orderflow')
        httpx.delete(f"{direct['SEARCH_URL']}/{alias}*?expand_wildcards=all", timeout=30)
        p = subprocess.run([f"{a.bin_dir}/orderctl", "setup"], env=direct_env, capture_output=True, text=True, timeout=300)
        open(os.path.join(logs, "setup.log"), "w").write(p.stdout + p.stderr)
        if p.returncode != 0:
            raise RuntimeError(f"orderctl setup failed:\n{p.stdout}{p.stderr}")
        log("topology made by orderctl setup")

        svc_env = dict(common, **proxied)
        specs = [
            ("command", "order-command", "command-1", {"COMMAND_HTTP_ADDR": f"127.0.0.1:{p_cmd}"}, f"http://127.0.0.1:{p_cmd}/readyz"),
            ("relay", "outbox-relay", "relay-1", {"OPS_ADDR": f"127.0.0.1:{p_relay1}"}, f"http://127.0.0.1:{p_relay1}/readyz"),
            ("relay", "outbox-relay", "relay-2", {"OPS_ADDR": f"127.0.0.1:{p_relay2}"}, f"http://127.0.0.1:{p_relay2}/readyz"),
            ("summary", "summary-projector", "summary-1", {"OPS_ADDR": f"127.0.0.1:{p_sum1}"}, f"http://127.0.0.1:{p_sum1}/readyz"),
            ("summary", "summary-projector", "summary-2", {"OPS_ADDR": f"127.0.0.1:{p_sum2}"}, f"http://127.0.0.1:{p_sum2}/readyz"),
            ("search", "search-projector", "search-1", {"OPS_ADDR": f"127.0.0.1:{p_sea1}"}, f"http://127.0.0.1:{p_sea1}/readyz"),
            ("search", "search-projector", "search-2", {"OPS_ADDR": f"127.0.0.1:{p_sea2}"}, f"http://127.0.0.1:{p_sea2}/readyz"),
            ("status", "status-projector", "status-1", {"OPS_ADDR": f"127.0.0.1:{p_st1}"}, f"http://127.0.0.1:{p_st1}/readyz"),
            ("query", "order-query", "query-1", {"QUERY_HTTP_ADDR": f"127.0.0.1:{p_query}"}, f"http://127.0.0.1:{p_query}/readyz"),
        ]
        extra_status = [
            ("status", "status-projector", "status-2", {"OPS_ADDR": f"127.0.0.1:{p_st2}"}, f"http://127.0.0.1:{p_st2}/readyz"),
            ("status", "status-projector", "status-3", {"OPS_ADDR": f"127.0.0.1:{p_st3}"}, f"http://127.0.0.1:{p_st3}/readyz"),
        ]
        def make(spec):
            kind, binary, name, extra, url = spec
            env = dict(access.service_env(binary, svc_env, passwords), **extra)
            if kind in ("summary", "search", "status"):
                env["CONSUMER_GROUP"] = f"soak-{binary}"
            if kind == "query":
                env.update(SUMMARY_GROUP="soak-summary-projector", SEARCH_GROUP="soak-search-projector",
                           STATUS_GROUP="soak-status-projector")
            s = Service(name, f"{a.bin_dir}/{binary}", env, url, logs, name)
            fleet.add(kind, s)
            return s

        for spec in specs:
            make(spec).start()
        asyncio.run(wait_ready(fleet.all()))
        log("services ready: " + ", ".join(s.name for s in fleet.all()))

        stores = Stores(direct["WRITE_DATABASE_URL"], direct["READ_DATABASE_URL"], direct["REDIS_URL"], prefix,
                        direct["SEARCH_URL"], alias, direct["KAFKA_BROKERS"], topic)
        sampler = Sampler(stores)
        threading.Thread(target=sampler.run, daemon=True).start()
        staff = tokens.mint(a.bin_dir, common, "staff", "soak-staff")
        load = Load(f"http://127.0.0.1:{p_cmd}", f"http://127.0.0.1:{p_query}", rng, rate, orders, a.duration, [],
                    headers=tokens.mint(a.bin_dir, common, "service", "soak-load"), staff_headers=staff)
        injector = Injector(rng, kinds, engines, toxi, fleet, log)
        supervisor = Supervisor(fleet.all(), events)
        result["load_start"] = None

        async def scale():
            await asyncio.sleep(0.25 * a.duration)
            new = [make(s) for s in extra_status]
            for s in new:
                s.start()
                supervisor.services.append(s)
            events.append({"t": time.time(), "what": "scale", "detail": "status-projector 1 → 3"})
            log("scale: status-projector 1 → 3")
            await asyncio.sleep(0.35 * a.duration)
            for s in new:
                s.retired = True
                s.expect_down = True
                await asyncio.to_thread(s.term)
            events.append({"t": time.time(), "what": "scale", "detail": "status-projector 3 → 1"})
            log("scale: status-projector 3 → 1")

        async def soak():
            nonlocal stop_event
            stop_event = asyncio.Event()
            async with httpx.AsyncClient() as c:
                await load.create_products(c, 12, f"{seed}")
            result["load_start"] = time.time()
            sup = asyncio.create_task(supervisor.run())
            last_fault = a.duration - 35  # the last fault starts early enough to heal before the load ends
            inj = asyncio.create_task(injector.run(min(15.0, 0.1 * a.duration), gap, time.monotonic() + last_fault, stop_event))
            sc = asyncio.create_task(scale())
            await load.run(stop_event)
            log(f"load done: {len(load.acks)} commands acknowledged")
            await inj
            await sc
            # Heal: every link clean, every engine up, every replica running.
            toxi.reset()
            for e in ("postgres", "redis", "kafka", "opensearch"):
                await engines.arun("up", e)
            for s in fleet.all():
                if not s.retired and not s.alive():
                    s.start()
            await wait_ready([s for s in fleet.all() if not s.retired])
            healed = time.time()
            result["healed"] = healed
            log("healed; draining")
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not sampler.converged():
                await asyncio.sleep(0.5)
            result["converged"] = time.time() if sampler.converged() else None
            supervisor.stopped = True
            await sup

        asyncio.run(soak())
        last_heal = max([f["healed"] for f in injector.faults] or [result["load_start"]])
        result["last_fault_healed"] = last_heal
        result["load_stop"] = load.stop_at
        if result["converged"]:
            log(f"converged {result['converged'] - last_heal:.1f} s after the last fault healed, "
                f"{result['converged'] - load.stop_at:.1f} s after the load stopped")
        else:
            log("did NOT converge within 300 s of healing")
        sampler.stop.set()
        time.sleep(1.2)
        log("checking")
        checker = Checker(stores, load, a.bin_dir, direct_env)
        passed = checker.run()
        if not result["converged"]:
            checker.failures.append(("read models converged within 300 s of healing", 1, []))
            passed = False
        # Services that died by themselves (besides the faults' kill -9s).
        result["unexpected_exits"] = [e for e in events if e["what"] == "unexpected-exit"]
        for s in fleet.all():
            s.expect_down = True
        df = None
        if not a.no_diskfull:
            log("disk-full scenario")
            df = diskfull.run(a.bin_dir, common, direct, pg, log, os.path.join(logs, "diskfull"))
            if not df["passed"]:
                passed = False
        ok = passed
        report.write(report_dir, work, result, load, sampler.samples, injector.faults, events, checker, df, fleet, ok)
        log(f"report: {os.path.join(report_dir, 'SOAK.md')}")
        for name, n, ex in checker.failures:
            log(f"FAILED: {name}: {n}")
            for e in ex:
                log(f"    {e}")
        if df and not df["passed"]:
            for f in df["failures"]:
                log(f"FAILED: disk full: {f}")
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}); healing")
    except Exception as e:
        log(f"ERROR: {type(e).__name__}: {e}")
        import traceback
        traceback.print_exc()
    finally:
        if sampler:
            sampler.stop.set()
        for s in fleet.all():
            s.expect_down = True
            s.retired = True
            try:
                s.term(wait=15)
            except Exception:
                pass
        toxi.reset()
        toxi.stop()
        for e in ("opensearch", "kafka", "redis", "postgres"):
            try:
                engines.run("down", e, timeout=90)
            except Exception as ex:
                log(f"stopping {e}: {ex}")
        diskfull.cleanup()
        log("everything this run started is stopped")
    log("PASSED" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
