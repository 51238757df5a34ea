"""Disk full on the write database.

A separate small Postgres cluster (Debian's initdb/pg_ctl) on a 64 MiB
tmpfs is the write database of an order-command of its own; once orders
flow, a file fills the tmpfs. Expected: the command API answers 503 (not a
500, not a hang) within 2 s, no order exists without its outbox rows, and
once the file is gone commands succeed again with nothing restarted by hand.
"""

import glob
import shutil
import os
import subprocess
import time
import uuid

import httpx
import psycopg

from procs import free_ports
import tokens

MOUNT = None
STATE = {}


def sh(*argv, **kw):
    return subprocess.run(list(argv), capture_output=True, text=True, **kw)


def pg_bin():
    return sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]


def cleanup():
    p = STATE.pop("command", None)
    if p and p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
    data = STATE.pop("data", None)
    if data and os.path.exists(os.path.join(data, "postmaster.pid")):
        sh("runuser", "-u", "postgres", "--", f"{pg_bin()}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
    mnt = STATE.pop("mount", None)
    if mnt:
        sh("umount", "-l", mnt)


def attempt(c, url, body, key):
    t = time.monotonic()
    try:
        r = c.post(url, json=body, headers={"Idempotency-Key": key}, timeout=10)
        return r.status_code, time.monotonic() - t, r.text[:300]
    except httpx.HTTPError as e:
        return type(e).__name__, time.monotonic() - t, ""


def integrity(dsn):
    """Orders whose outbox rows are not exactly versions 1..version."""
    with psycopg.connect(dsn, connect_timeout=5, autocommit=True) as c:
        bad = c.execute(
            """SELECT o.id FROM orders o LEFT JOIN outbox x ON x.aggregate_id = o.id
                GROUP BY o.id, o.version
               HAVING count(x.id) <> o.version OR min(x.aggregate_version) <> 1 OR max(x.aggregate_version) <> o.version"""
        ).fetchall()
        n = c.execute("SELECT count(*) FROM orders").fetchone()[0]
    return n, [str(b[0]) for b in bad]


def run(bin_dir, common, direct, main_pg_port, log, logdir):
    os.makedirs(logdir, exist_ok=True)
    res = {"passed": False, "failures": [], "phases": {}}
    if os.geteuid() != 0:
        res["failures"].append("not root: cannot mount a tmpfs (skipped)")
        return res
    mnt = os.path.join(os.path.dirname(logdir), "..", "diskfull-mnt")
    mnt = os.path.abspath(mnt)
    os.makedirs(mnt, exist_ok=True)
    sh("umount", "-l", mnt)
    r = sh("mount", "-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs", mnt)
    if r.returncode != 0:
        res["failures"].append(f"mount tmpfs failed: {r.stderr.strip()}")
        return res
    STATE["mount"] = mnt
    pgport, cport = free_ports(2)
    data = os.path.join(mnt, "data")
    os.makedirs(data)
    # The WAL lives on another volume, as in production: a full WAL disk
    # makes Postgres itself PANIC and stop (its crash recovery cannot write
    # either), which no client can recover from; a full data volume is what
    # the command service has to live with.
    waldir = os.path.join(os.path.dirname(mnt), "diskfull-wal")
    shutil.rmtree(waldir, ignore_errors=True)
    os.makedirs(waldir)
    sh("chown", "postgres:", waldir)
    sh("chown", "-R", "postgres:", mnt, logdir)
    b = pg_bin()
    try:
        r = sh("runuser", "-u", "postgres", "--", f"{b}/initdb", "-D", data, "-U", "postgres", "--auth=trust",
               "-E", "UTF8", "--locale=C.UTF-8", f"--waldir={waldir}")
        if r.returncode != 0:
            raise RuntimeError(f"initdb: {r.stderr[-500:]}")
        with open(os.path.join(data, "postgresql.conf"), "a") as f:
            f.write(f"\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{mnt}'\nshared_buffers = 16MB\n"
                    "max_connections = 50\n")
        STATE["data"] = data
        r = sh("runuser", "-u", "postgres", "--", f"{b}/pg_ctl", "-D", data, "-l", os.path.join(logdir, "postgres.log"),
               "-o", f"-p {pgport}", "-w", "-t", "60", "start")
        if r.returncode != 0:
            raise RuntimeError(f"pg_ctl start: {r.stderr[-500:]}")
        admin = f"postgres://postgres@127.0.0.1:{pgport}/postgres"
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute("CREATE ROLE orderflow LOGIN CREATEDB CREATEROLE")
            c.execute("CREATE DATABASE orderflow_soak_diskfull_write OWNER orderflow")
        with psycopg.connect(f"postgres://postgres@127.0.0.1:{main_pg_port}/postgres", autocommit=True) as c:
            c.execute('DROP DATABASE IF EXISTS "orderflow_soak_diskfull_read" WITH (FORCE)')
            c.execute('CREATE DATABASE "orderflow_soak_diskfull_read" OWNER orderflow')
        wdsn = f"postgres://orderflow@127.0.0.1:{pgport}/orderflow_soak_diskfull_write"
        env = dict(common, WRITE_DATABASE_URL=wdsn,
                   READ_DATABASE_URL=f"postgres://orderflow@127.0.0.1:{main_pg_port}/orderflow_soak_diskfull_read",
                   KAFKA_BROKERS=direct["KAFKA_BROKERS"], EVENTS_TOPIC="orderflow-soak-diskfull.events.v1",
                   COMMAND_HTTP_ADDR=f"127.0.0.1:{cport}")
        r = sh(f"{bin_dir}/orderctl", "setup", env=env, timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"orderctl setup: {r.stdout[-500:]}{r.stderr[-500:]}")
        out = open(os.path.join(logdir, "order-command.log"), "w")
        STATE["command"] = subprocess.Popen([f"{bin_dir}/order-command"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        base = f"http://127.0.0.1:{cport}"
        with httpx.Client(headers=tokens.mint(bin_dir, env, "staff", "soak-diskfull")) as c:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if c.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("order-command on the small cluster not ready")
                time.sleep(0.3)
            p = c.post(f"{base}/products", json={"sku": "DISKFULL-1", "name": "Disk", "unit_price_minor": 500,
                                                  "currency": "EUR", "stock": 1_000_000}, timeout=10).json()["id"]

            cust = c.post(f"{base}/customers", json={"name": "Disk Full", "email": f"df-{uuid.uuid4().hex}@example.com"},
                          timeout=10).json()["id"]
            body = {"customer_id": cust, "lines": [{"product_id": p, "quantity": 1}],
                    "shipping_address": {"line1": "1 Full Way", "city": "London", "postal_code": "N1", "country": "GB"}}

            def place():
                return attempt(c, f"{base}/orders", body, str(uuid.uuid4()))

            before = [place() for _ in range(20)]
            res["phases"]["before"] = before
            # Fill the tmpfs.
            filler = os.path.join(mnt, "filler")
            # Unbuffered: a write the full disk refuses leaves nothing in a
            # buffer for close() to retry (a buffered file raised ENOSPC
            # again on leaving the `with`, when the last write was partial).
            chunk = b"\0" * (1 << 20)
            written = 0
            with open(filler, "wb", buffering=0) as f:
                try:
                    while f.write(chunk) == len(chunk):
                        written += 1
                except OSError:
                    pass
            with open(filler + "-tail", "wb", buffering=0) as f:  # the last partial MiB too
                try:
                    while f.write(b"\0" * 4096):
                        pass
                except OSError:
                    pass
            log(f"disk full: tmpfs filled ({written} MiB of filler)")
            full = []
            t_end = time.monotonic() + 20
            while time.monotonic() < t_end:
                full.append(place())
                time.sleep(0.02)
            res["phases"]["full"] = full
            # Space back: nothing else is touched.
            os.remove(filler)
            os.remove(filler + "-tail")
            t_free = time.monotonic()
            after = []
            recovered = None
            while time.monotonic() - t_free < 60:
                a = place()
                after.append(a)
                if a[0] == 201:
                    recovered = time.monotonic() - t_free
                    if len([x for x in after if x[0] == 201]) >= 5:
                        break
                time.sleep(0.2)
            res["phases"]["after"] = after
            res["recovered_after_s"] = recovered
        try:
            n, bad = integrity(wdsn)
        except Exception as e:
            n, bad = None, []
            res["failures"].append(f"the write database did not answer after the space came back: {e}")
        res["orders"] = n
        res["orders_without_outbox"] = bad
        pm = sh("runuser", "-u", "postgres", "--", f"{b}/pg_ctl", "-D", data, "status")
        res["postgres_running"] = pm.returncode == 0
        res["command_running"] = STATE["command"].poll() is None
        pglog = open(os.path.join(logdir, "postgres.log")).read()
        res["postgres_panics"] = pglog.count("PANIC")
        res["postgres_restarts"] = pglog.count("all server processes terminated; reinitializing")
        # Verdict.
        statuses = [x[0] for x in full]
        errors = [x for x in full if x[0] != 201]
        res["full_statuses"] = {str(k): statuses.count(k) for k in sorted(set(statuses), key=str)}
        clog = open(os.path.join(logdir, "order-command.log"), errors="replace").read().splitlines()
        res["command_log_example"] = next((x for x in clog if "No space left" in x), None)
        lat = sorted(x[1] for x in errors)
        res["full_error_latency_p50"] = lat[len(lat) // 2] if lat else None
        res["full_error_latency_max"] = lat[-1] if lat else None
        if not errors:
            res["failures"].append("the disk never looked full to the command API (every order succeeded)")
        non503 = [x for x in errors if x[0] != 503]
        if non503:
            kinds = sorted({str(x[0]) for x in non503})
            ex = next((x[2] for x in non503 if x[2]), "")
            res["failures"].append(f"{len(non503)} of {len(errors)} refused commands answered {', '.join(kinds)} instead of 503 (e.g. {ex[:160]!r})")
        slow = [x for x in errors if x[1] > 2.0]
        if slow:
            res["failures"].append(f"{len(slow)} refusals took over 2 s (max {max(x[1] for x in slow):.1f} s)")
        if bad:
            res["failures"].append(f"{len(bad)} orders without exactly their outbox rows")
        if recovered is None:
            res["failures"].append("no order accepted within 60 s of the space coming back")
        if not res["command_running"]:
            res["failures"].append("order-command exited")
        res["passed"] = not res["failures"]
    except Exception as e:
        res["failures"].append(f"scenario error: {type(e).__name__}: {e}")
    finally:
        cleanup()
    return res
