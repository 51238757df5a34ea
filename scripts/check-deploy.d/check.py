"""Policy and configuration-drift checks of docker-compose.yml and deploy/.

Run by scripts/check-deploy (which renders the overlays first):

    check.py --bin-dir target/debug --compose docker-compose.yml \
             --readme README.md --rendered local=/tmp/x/local.yaml ...

Reads each binary's real `--help` (clap prints `[env: NAME=]` for every
setting), so a variable renamed in a crate, in compose or in deploy/ fails
here. Prints one line per problem and exits 1 when there is any.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

# Binaries the image carries; containers whose image is `orderflow` run one.
BINARIES = (
    "order-command",
    "outbox-relay",
    "summary-projector",
    "search-projector",
    "status-projector",
    "order-query",
    "orderctl",
)
IMAGE = "orderflow"

# Variables read outside clap, so absent from --help: tracing's EnvFilter
# (RUST_LOG), the OpenTelemetry SDK (OTEL_*) in
# crates/orderflow-service/src/telemetry.rs, and Rust's RUST_BACKTRACE.
AMBIENT = ("RUST_LOG", "RUST_BACKTRACE")
AMBIENT_PREFIXES = ("OTEL_",)

# Settings of a service's own listening address: in a container they must
# bind every interface, or nothing outside the container reaches them.
ADDR_SUFFIX = "_ADDR"

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
LONG_RUNNING = ("Deployment", "StatefulSet", "DaemonSet")


@dataclass
class Setting:
    env: str
    flag: str
    default: bool
    required: bool


problems: list[str] = []


def problem(where: str, text: str) -> None:
    problems.append(f"{where}: {text}")


# --- --help parsing -------------------------------------------------------

OPTION_START = re.compile(r"^\s+(?:-\w, )?--([a-z0-9][a-z0-9-]*)")
ENV = re.compile(r"\[env: ([A-Z0-9_]+)=")
DEFAULT = re.compile(r"\[default: ([^\]]*)\]")


def run_help(bin_dir: Path, argv: list[str]) -> str:
    exe = bin_dir / argv[0]
    if not exe.is_file():
        raise SystemExit(
            f"check-deploy: {exe} does not exist: build the binaries first "
            f"(cargo build --workspace --locked --bins) or set ORDERFLOW_BIN_DIR"
        )
    out = subprocess.run(
        [str(exe), *argv[1:], "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"check-deploy: `{' '.join(argv)} --help` failed: {out.stderr.strip()}")
    return out.stdout


def parse_help(text: str) -> tuple[dict[str, Setting], dict[str, str]]:
    """Settings by env name, and env defaults by env name."""
    usage = text.split("Usage:", 1)[1].split("\n\n", 1)[0] if "Usage:" in text else ""
    # What is left of the usage line outside [...] is required.
    while True:
        stripped = re.sub(r"\[[^\[\]]*\]", "", usage)
        if stripped == usage:
            break
        usage = stripped
    required_flags = set(re.findall(r"--([a-z0-9][a-z0-9-]*)", usage))

    entries: list[tuple[str, str]] = []
    for line in text.splitlines():
        m = OPTION_START.match(line)
        if m:
            entries.append((m.group(1), line))
        elif entries:
            flag, body = entries[-1]
            entries[-1] = (flag, body + "\n" + line)
    settings: dict[str, Setting] = {}
    defaults: dict[str, str] = {}
    for flag, body in entries:
        env = ENV.search(body)
        if not env:
            continue
        d = DEFAULT.search(body)
        name = env.group(1)
        settings[name] = Setting(name, flag, d is not None, flag in required_flags)
        if d:
            defaults[name] = d.group(1)
    return settings, defaults


class Binaries:
    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.cache: dict[tuple[str, ...], tuple[dict[str, Setting], dict[str, str]]] = {}

    def command(self, argv: list[str]) -> tuple[dict[str, Setting], dict[str, str]]:
        """Settings of `argv` (binary + subcommands): every level's options,
        since clap reads a parent command's env settings too."""
        path = [argv[0]] + [a for a in argv[1:] if not a.startswith("-")]
        settings: dict[str, Setting] = {}
        defaults: dict[str, str] = {}
        for depth in range(1, len(path) + 1):
            key = tuple(path[:depth])
            if key not in self.cache:
                self.cache[key] = parse_help(run_help(self.bin_dir, list(key)))
            s, d = self.cache[key]
            settings.update(s)
            defaults.update(d)
        return settings, defaults

    def every_setting(self) -> dict[str, set[str]]:
        """Env name -> the commands that read it, over every binary and
        every orderctl subcommand."""
        found: dict[str, set[str]] = {}
        todo = [[b] for b in BINARIES]
        while todo:
            argv = todo.pop()
            text = run_help(self.bin_dir, argv)
            settings, _ = parse_help(text)
            for name in settings:
                found.setdefault(name, set()).add(" ".join(argv))
            if "Commands:" in text:
                block = text.split("Commands:", 1)[1].split("\n\n", 1)[0]
                for line in block.splitlines():
                    m = re.match(r"^\s{2}([a-z][a-z0-9-]*)\s", line)
                    if m and m.group(1) != "help":
                        todo.append([*argv, m.group(1)])
        return found


def ambient(name: str) -> bool:
    return name in AMBIENT or name.startswith(AMBIENT_PREFIXES)


def parse_duration(value: str) -> float | None:
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", value.strip())
    if not m:
        return None
    n = int(m.group(1))
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def check_container_env(
    where: str,
    argv: list[str],
    env: dict[str, str | None],
    binaries: Binaries,
) -> dict[str, str]:
    """Env names set for one container against what its command reads.
    `env` maps names to values (None when they come from a Secret or are
    otherwise unknown here). Returns the effective known values."""
    if argv[0] not in BINARIES:
        problem(where, f"runs `{argv[0]}`, which is not a binary of the image ({', '.join(BINARIES)})")
        return {}
    settings, defaults = binaries.command(argv)
    for name in env:
        if name not in settings and not ambient(name):
            problem(where, f"sets {name}, which `{' '.join(argv)}` does not read (not in its --help)")
    flags_in_command = {a.split("=", 1)[0].lstrip("-") for a in argv[1:] if a.startswith("--")}
    for s in settings.values():
        if s.required and s.env not in env and s.flag not in flags_in_command:
            problem(where, f"does not set {s.env}, which `{' '.join(argv)}` requires (no default)")
    values = dict(defaults)
    values.update({k: v for k, v in env.items() if v is not None})
    for name, s in settings.items():
        if name.endswith(ADDR_SUFFIX):
            value = values.get(name, "")
            if name not in env:
                problem(where, f"leaves {name} at its default {value!r}: set it to 0.0.0.0:<port> in a container")
            elif value and not value.startswith(("0.0.0.0:", "[::]:")):
                problem(where, f"{name}={value!r} binds one interface only: use 0.0.0.0:<port> in a container")
        if name == "MIGRATE_ON_START" and str(values.get(name)).lower() != "false":
            problem(where, "must set MIGRATE_ON_START=false: the setup job owns the schema")
    return values


def listen_port(values: dict[str, str]) -> int | None:
    """Where the probes and the scraper go: OPS_ADDR when set (the APIs
    serve /healthz, /readyz, /metrics there, apart from the API), else the
    one address the binary listens on."""
    ops = values.get("OPS_ADDR")
    if ops and ":" in ops:
        values = {"OPS_ADDR": ops}
    for name, value in values.items():
        if name.endswith(ADDR_SUFFIX) and ":" in value:
            try:
                return int(value.rsplit(":", 1)[1])
            except ValueError:
                return None
    return None


# --- compose --------------------------------------------------------------


def check_compose(path: Path, binaries: Binaries) -> None:
    doc = yaml.safe_load(path.read_text())
    services = doc.get("services", {})
    ours = {n: s for n, s in services.items() if str(s.get("image", "")).split(":")[0] == IMAGE}
    if not ours:
        problem(str(path), f"no service runs the {IMAGE} image")
    setup_jobs = [n for n, s in ours.items() if list(s.get("command") or [])[:2] == ["orderctl", "setup"]]
    if len(setup_jobs) != 1:
        problem(str(path), f"expected one service running `orderctl setup`, found {setup_jobs}")
    run = {b: False for b in BINARIES if b != "orderctl"}
    for name, svc in services.items():
        where = f"{path}: service {name}"
        if "env_file" in svc:
            problem(where, "uses env_file: set environment inline so it can be checked")
        ports = svc.get("ports") or []
        if name in ours:
            argv = svc.get("command")
            if isinstance(argv, str) or not argv:
                problem(where, "needs `command` as a list naming the binary")
                continue
            argv = [str(a) for a in argv]
            raw = svc.get("environment") or {}
            if isinstance(raw, list):
                raw = dict(item.split("=", 1) if "=" in item else (item, None) for item in raw)
            env = {k: (None if v is None else str(v)) for k, v in raw.items()}
            values = check_container_env(where, argv, env, binaries)
            if argv[0] in run:
                run[argv[0]] = True
            grace = parse_duration(values.get("SHUTDOWN_GRACE", "")) if argv[0] != "orderctl" else None
            stop = parse_duration(str(svc.get("stop_grace_period", "10s")))
            if grace is not None and stop is not None and stop <= grace:
                problem(where, f"stop_grace_period {stop:g}s must exceed SHUTDOWN_GRACE {grace:g}s")
            if name not in setup_jobs:
                dep = (svc.get("depends_on") or {}).get(setup_jobs[0] if setup_jobs else "", {})
                if not isinstance(dep, dict) or dep.get("condition") != "service_completed_successfully":
                    problem(where, "must depend on the setup service with condition service_completed_successfully")
                if argv[0] not in ("order-command", "order-query") and ports:
                    problem(where, "publishes ports: only the two HTTP APIs may")
                for p in ports:
                    if not str(p).startswith("127.0.0.1:"):
                        problem(where, f"publishes {p!r} beyond loopback")
        else:
            if ports:
                problem(where, "publishes ports: only the two HTTP APIs may")
            if "healthcheck" not in svc:
                problem(where, "has no healthcheck, so nothing can wait for it to be healthy")
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            problem(where, "depends_on without conditions: use service_healthy / service_completed_successfully")
        else:
            for dep, spec in deps.items():
                cond = (spec or {}).get("condition")
                if cond not in ("service_healthy", "service_completed_successfully"):
                    problem(where, f"depends on {dep} with condition {cond!r}, not a health-based one")
    for b, seen in run.items():
        if not seen:
            problem(str(path), f"no service runs {b}")


# --- rendered kustomize overlays --------------------------------------------


def pod_spec(obj: dict) -> dict:
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return spec.get("template", {}).get("spec", {})


def pod_labels(obj: dict) -> dict:
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return spec.get("template", {}).get("metadata", {}).get("labels", {}) or {}


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()) and not selector.get(
        "matchExpressions"
    )


def check_security(where: str, pod: dict, c: dict) -> None:
    psc = pod.get("securityContext") or {}
    sc = c.get("securityContext") or {}
    if not (sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
        problem(where, "runAsNonRoot is not true")
    if sc.get("runAsUser", psc.get("runAsUser")) == 0:
        problem(where, "runs as user 0")
    if sc.get("readOnlyRootFilesystem") is not True:
        problem(where, "readOnlyRootFilesystem is not true")
    if sc.get("allowPrivilegeEscalation") is not False:
        problem(where, "allowPrivilegeEscalation is not false")
    if sc.get("privileged"):
        problem(where, "is privileged")
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        problem(where, "does not drop ALL capabilities")


def check_rendered(overlay: str, path: Path, binaries: Binaries) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    configmaps = {d["metadata"]["name"]: d.get("data") or {} for d in docs if d["kind"] == "ConfigMap"}
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    hpas = {d["spec"]["scaleTargetRef"]["name"]: d for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
    setup_jobs = 0
    services = {b: False for b in BINARIES if b != "orderctl"}
    for d in docs:
        kind, name = d["kind"], d["metadata"]["name"]
        where0 = f"{overlay}: {kind}/{name}"
        if kind == "Secret":
            problem(where0, "is a Secret in the manifests: reference Secrets by name, never commit them")
            continue
        if kind not in WORKLOAD_KINDS:
            continue
        pod = pod_spec(d)
        labels = pod_labels(d)
        if kind in LONG_RUNNING:
            if not any(selects(p["spec"]["selector"], labels) for p in pdbs):
                problem(where0, "has no PodDisruptionBudget")
            if name in hpas and "replicas" in d.get("spec", {}):
                problem(where0, "sets spec.replicas while an HPA scales it (each apply would reset the count)")
        named = [
            p
            for p in policies
            if (p["spec"].get("podSelector") or {}).get("matchLabels", {}).get("app.kubernetes.io/name")
            == labels.get("app.kubernetes.io/name")
            and selects(p["spec"]["podSelector"], labels)
        ]
        if not named:
            problem(where0, "no NetworkPolicy of its own says what it may talk to")
        for c in (pod.get("initContainers") or []) + (pod.get("containers") or []):
            where = f"{where0} container {c['name']}"
            check_security(where, pod, c)
            res = c.get("resources") or {}
            for part in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in (res.get(part) or {}):
                        problem(where, f"has no {part}.{r}")
            if kind in LONG_RUNNING and c in (pod.get("containers") or []):
                for probe in ("readinessProbe", "livenessProbe"):
                    if probe not in c:
                        problem(where, f"has no {probe}")
            for ef in c.get("envFrom") or []:
                if "secretRef" in ef:
                    problem(where, "envFrom a Secret hides which settings it sets: use env with secretKeyRef")
            if str(c.get("image", "")).split(":")[0].split("/")[-1] != IMAGE:
                continue
            argv = [str(a) for a in (c.get("command") or [])] + [str(a) for a in (c.get("args") or [])]
            if not argv:
                problem(where, "needs `command` naming the binary")
                continue
            if argv[:2] == ["orderctl", "setup"]:
                setup_jobs += 1
            if kind in LONG_RUNNING and argv[0] in services:
                services[argv[0]] = True
            env: dict[str, str | None] = {}
            for e in c.get("env") or []:
                ref = (e.get("valueFrom") or {}).get("configMapKeyRef")
                if ref:
                    data = configmaps.get(ref["name"])
                    if data is None or ref["key"] not in data:
                        problem(where, f"{e['name']} refers to ConfigMap {ref['name']} key {ref['key']}, which is not rendered")
                        env[e["name"]] = None
                    else:
                        env[e["name"]] = str(data[ref["key"]])
                else:
                    env[e["name"]] = str(e["value"]) if "value" in e else None
            for ef in c.get("envFrom") or []:
                ref = ef.get("configMapRef")
                if ref:
                    data = configmaps.get(ref["name"])
                    if data is None:
                        problem(where, f"envFrom ConfigMap {ref['name']}, which is not rendered")
                        continue
                    for k, v in data.items():
                        env.setdefault(ef.get("prefix", "") + k, str(v))
            values = check_container_env(where, argv, env, binaries)
            if kind in LONG_RUNNING:
                grace = parse_duration(values.get("SHUTDOWN_GRACE", "")) or 0
                pre = ((c.get("lifecycle") or {}).get("preStop") or {}).get("exec", {}).get("command") or []
                sleep = float(pre[1]) if len(pre) == 2 and pre[0] == "sleep" else 0
                tgps = pod.get("terminationGracePeriodSeconds", 30)
                if tgps <= grace + sleep:
                    problem(
                        where,
                        f"terminationGracePeriodSeconds {tgps} must exceed SHUTDOWN_GRACE {grace:g}s"
                        + (f" + preStop sleep {sleep:g}s" if sleep else ""),
                    )
                port = listen_port(values)
                ports = {p.get("name"): p["containerPort"] for p in c.get("ports") or []}
                if port is not None and port not in ports.values():
                    problem(where, f"listens on {port} but declares containerPorts {sorted(ports.values())}")
                for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                    http = (c.get(probe) or {}).get("httpGet")
                    if not http:
                        continue
                    p = ports.get(http["port"], http["port"])
                    if port is not None and p != port:
                        problem(where, f"{probe} goes to port {http['port']} but the binary listens on {port}")
                    want = "/readyz" if probe == "readinessProbe" else "/healthz"
                    if http.get("path") != want:
                        problem(where, f"{probe} path {http.get('path')} (want {want})")
                ann = (d["spec"]["template"].get("metadata") or {}).get("annotations") or {}
                if ann.get("prometheus.io/scrape") != "true" or (port and ann.get("prometheus.io/port") != str(port)):
                    problem(where0, f"pod template lacks prometheus.io/scrape=true and prometheus.io/port={port}")
    if setup_jobs != 1:
        problem(overlay, f"expected one Job running `orderctl setup`, found {setup_jobs}")
    for b, seen in services.items():
        if not seen:
            problem(overlay, f"no Deployment runs {b}")


# --- the image's health check ------------------------------------------------


def check_healthcheck(path: Path, binaries: Binaries) -> None:
    """deploy/image/healthcheck names each binary's address setting and its
    default port: both must still be what the binary's --help says."""
    seen = set()
    for m in re.finditer(r"^\s*([a-z-]+)\) addr=\$\{([A-Z0-9_]+):-([^}]*)\}", path.read_text(), re.M):
        binary, env, default = m.groups()
        seen.add(binary)
        if binary not in BINARIES:
            problem(str(path), f"names {binary}, which is not a binary of the image")
            continue
        settings, defaults = binaries.command([binary])
        if env not in settings:
            problem(str(path), f"reads {env} for {binary}, which `{binary}` does not have")
        elif defaults.get(env) != default:
            problem(str(path), f"assumes {binary}'s {env} defaults to {default}, its --help says {defaults.get(env)}")
    for binary in BINARIES:
        if binary != "orderctl" and binary not in seen:
            problem(str(path), f"has no address for {binary}")


def check_image_contents(dockerfile: Path, crates: Path) -> None:
    """The image carries every binary crate of the workspace, and the checks
    here know each of them."""
    m = re.search(r'^ARG BINARIES="([^"]*)"', dockerfile.read_text(), re.M)
    carried = set(m.group(1).split()) if m else set()
    if not m:
        problem(str(dockerfile), 'has no ARG BINARIES="..." naming the binaries it builds')
    workspace = {p.parent.parent.name for p in crates.glob("*/src/main.rs")}
    for name in sorted(workspace - carried):
        problem(str(dockerfile), f"does not build {name} (crates/{name}/src/main.rs)")
    for name in sorted(workspace ^ set(BINARIES)):
        problem("scripts/check-deploy.d/check.py", f"BINARIES and the workspace's binary crates differ on {name}")


# --- README configuration table --------------------------------------------


def check_readme(path: Path, binaries: Binaries) -> None:
    text = path.read_text()
    if "## Configuration" not in text:
        problem(str(path), "has no '## Configuration' section")
        return
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    listed: set[str] = set()
    for line in section.splitlines():
        if line.startswith("|"):
            first = line.split("|")[1]
            listed.update(re.findall(r"`([A-Z][A-Z0-9_]*)", first))
    for name, commands in sorted(binaries.every_setting().items()):
        if name not in listed:
            problem(f"{path} configuration table", f"has no row for {name} (read by {', '.join(sorted(commands))})")
    # Read outside clap, documented all the same.
    for name in ("RUST_LOG", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        if name not in listed:
            problem(f"{path} configuration table", f"has no row for {name}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", type=Path, required=True)
    ap.add_argument("--compose", type=Path, required=True)
    ap.add_argument("--readme", type=Path, required=True)
    ap.add_argument("--healthcheck", type=Path, required=True)
    ap.add_argument("--rendered", action="append", default=[], help="overlay=path of its `kustomize build`")
    args = ap.parse_args()
    binaries = Binaries(args.bin_dir)
    check_compose(args.compose, binaries)
    for item in args.rendered:
        overlay, path = item.split("=", 1)
        check_rendered(f"deploy/overlays/{overlay}", Path(path), binaries)
    check_healthcheck(args.healthcheck, binaries)
    check_image_contents(Path("Dockerfile"), Path("crates"))
    check_readme(args.readme, binaries)
    for p in problems:
        print(f"  {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
