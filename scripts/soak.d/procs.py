"""Processes the soak starts: engines (through engine.sh), toxiproxy, services.

Everything here listens on 127.0.0.1 only, and every process is recorded so
that `Processes.stop_all` can end exactly what this run started (by pid,
never by name).
"""

import asyncio
import os
import signal
import random
import socket
import subprocess
import time

import httpx

HERE = os.path.dirname(os.path.abspath(__file__))
ENGINE_SH = os.path.join(HERE, "engine.sh")


# Ports are drawn below Linux's ephemeral range (32768-60999): a port the
# kernel hands out for an outgoing connection could otherwise be taken in
# the moment between choosing it here and the service binding it.
PORT_RANGE = (20000, 32000)
_rng = random.Random()


def _bindable(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port():
    return free_ports(1)[0]


def free_ports(n):
    """n distinct free loopback ports outside the ephemeral range."""
    ports = []
    for _ in range(10_000):
        if len(ports) == n:
            return ports
        port = _rng.randrange(*PORT_RANGE)
        if port not in ports and _bindable(port):
            ports.append(port)
    raise RuntimeError(f"no {n} free loopback ports in {PORT_RANGE}")


class Engines:
    """The soak's private Postgres, Redis, Kafka and OpenSearch."""

    def __init__(self, env, log):
        self.env = env
        self.log = log

    def run(self, action, engine, timeout=240):
        t = time.monotonic()
        with open(self.log, "a") as out:
            out.write(f"--- {time.strftime('%H:%M:%S')} engine.sh {action} {engine}\n")
            out.flush()
            rc = subprocess.run(
                ["bash", ENGINE_SH, action, engine],
                env=self.env,
                stdout=out,
                stderr=out,
                timeout=timeout,
            ).returncode
        if rc != 0:
            raise RuntimeError(f"engine.sh {action} {engine} failed (exit {rc}); see {self.log}")
        return time.monotonic() - t

    async def arun(self, action, engine, timeout=240):
        return await asyncio.to_thread(self.run, action, engine, timeout)


class Toxiproxy:
    """A toxiproxy server and its HTTP API (loopback only)."""

    def __init__(self, server_bin, port, logdir):
        self.bin = server_bin
        self.port = port
        self.api = f"http://127.0.0.1:{port}"
        self.logdir = logdir
        self.proc = None
        self.links = {}

    def start(self):
        self.proc = subprocess.Popen(
            [self.bin, "-host", "127.0.0.1", "-port", str(self.port)],
            stdout=open(os.path.join(self.logdir, "toxiproxy.log"), "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.api}/version", timeout=1).raise_for_status()
                return
            except Exception:
                time.sleep(0.2)
        raise RuntimeError("toxiproxy did not start")

    def link(self, name, listen_port, upstream_port):
        assert 0 < listen_port < 65536 and 0 < upstream_port < 65536
        r = httpx.post(
            f"{self.api}/proxies",
            json={
                "name": name,
                "listen": f"127.0.0.1:{listen_port}",
                "upstream": f"127.0.0.1:{upstream_port}",
                "enabled": True,
            },
            timeout=5,
        )
        r.raise_for_status()
        self.links[name] = listen_port

    async def add_toxic(self, client, link, toxic, kind, attributes, stream="downstream"):
        r = await client.post(
            f"{self.api}/proxies/{link}/toxics",
            json={"name": toxic, "type": kind, "stream": stream, "toxicity": 1.0, "attributes": attributes},
            timeout=5,
        )
        r.raise_for_status()

    async def remove_toxic(self, client, link, toxic):
        r = await client.delete(f"{self.api}/proxies/{link}/toxics/{toxic}", timeout=5)
        if r.status_code not in (204, 404):
            r.raise_for_status()

    async def enable(self, client, link, enabled):
        r = await client.post(f"{self.api}/proxies/{link}", json={"enabled": enabled}, timeout=5)
        r.raise_for_status()

    def reset(self):
        """Every link enabled, every toxic removed."""
        try:
            httpx.post(f"{self.api}/reset", timeout=5).raise_for_status()
        except Exception:
            pass

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Service:
    """One replica of one service binary."""

    def __init__(self, name, binary, env, ready_url, logdir, replica):
        self.name = name  # e.g. relay-1
        self.binary = binary
        self.env = env
        self.ready_url = ready_url
        self.log = os.path.join(logdir, f"{name}.log")
        self.replica = replica
        self.proc = None
        self.starts = 0
        self.exits = []  # (time, returncode, expected)
        self.expect_down = False  # set while a fault keeps it down or it is scaled away
        self.retired = False

    def start(self):
        self.starts += 1
        out = open(self.log, "a")
        out.write(f"===== start {self.starts} at {time.strftime('%H:%M:%S')} =====\n")
        out.flush()
        self.proc = subprocess.Popen(
            [self.binary], env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        out.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.exits.append((time.time(), -9, True))

    def term(self, wait=30):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.exits.append((time.time(), self.proc.returncode, True))

    async def ready(self, client):
        try:
            r = await client.get(self.ready_url, timeout=2)
            return r.status_code == 200
        except Exception:
            return False


class Supervisor:
    """Restarts a service that exited when nobody meant it to (what an
    orchestrator would do), and records the exit."""

    def __init__(self, services, events):
        self.services = services
        self.events = events
        self.stopped = False

    async def run(self):
        while not self.stopped:
            for s in list(self.services):
                if s.retired or s.expect_down or s.alive() or s.proc is None:
                    continue
                rc = s.proc.returncode
                s.exits.append((time.time(), rc, False))
                self.events.append({"t": time.time(), "what": "unexpected-exit", "service": s.name, "rc": rc})
                await asyncio.sleep(1)
                if not self.stopped and not s.expect_down and not s.retired:
                    s.start()
            await asyncio.sleep(0.5)
