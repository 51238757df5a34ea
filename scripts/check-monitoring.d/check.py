"""Checks of deploy/monitoring that promtool does not make.

Run by scripts/check-monitoring after `promtool check` and `promtool test`:

    check.py --crates crates --monitoring deploy/monitoring \
             --promtool <path> --rendered <kustomize build output>

- every metric a rule or a dashboard panel reads is one the crates export
  (`metrics::counter!`, `gauge!`, `histogram!`; a histogram's _bucket, _sum
  and _count), `up`, or kube-state-metrics' few named below; every label
  matched on is one of that metric's labels or a target label of the scrape
  job in prometheus.yaml; every label grouped on is known somewhere;
- every alert has `for`, a severity (critical or warning), a summary and a
  description, and is tested at least once firing and once not firing; no
  test names an alert that does not exist (promtool would pass it);
- the dashboard is JSON with unique panel ids, every panel's datasource is
  the $datasource variable, and every query parses (promtool check rules on
  the queries as recording rules);
- the kustomize output holds both files unchanged.

Prints one line per problem and exits 1 when there is any.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

problems: list[str] = []


def problem(where: str, text: str) -> None:
    problems.append(f"{where}: {text}")


# --- what the crates export -----------------------------------------------

MACRO = re.compile(r"\b(counter|gauge|histogram)!\(\s*\"([a-zA-Z_:][a-zA-Z0-9_:]*)\"(.*?)\)\s*[.;]", re.S)
LABEL_PAIR = re.compile(r"\"([a-zA-Z_][a-zA-Z0-9_]*)\"\s*=>")
LABEL_ARRAY_REF = re.compile(r"^\s*,\s*&([a-z_][a-z0-9_]*)\s*$")
TUPLE_KEY = re.compile(r"\(\s*\"([a-zA-Z_][a-zA-Z0-9_]*)\"\s*,")

# Not the crates': Prometheus' own and kube-state-metrics' (used by the
# orderflow-kubernetes group), with their labels.
EXTERNAL = {
    "up": set(),
    "kube_cronjob_status_last_schedule_time": {"namespace", "cronjob"},
    "kube_cronjob_status_last_successful_time": {"namespace", "cronjob"},
    "kube_cronjob_status_active": {"namespace", "cronjob"},
}


def exported_metrics(crates: Path) -> dict[str, set[str]]:
    """Metric name -> label names, from the metrics macros in the crates."""
    metrics: dict[str, set[str]] = {}
    for path in sorted(crates.rglob("*.rs")):
        text = path.read_text(encoding="utf-8")
        for kind, name, rest in MACRO.findall(text):
            labels = set(LABEL_PAIR.findall(rest))
            array = LABEL_ARRAY_REF.match(rest)
            if array:
                # `counter!("name", &labels)`: the keys of `let labels = [("k", v), ...];`.
                found = re.search(rf"let {array.group(1)}\s*=\s*\[(.*?)\];", text, re.S)
                if not found:
                    problem(str(path), f"{name}: cannot find the labels in `{array.group(1)}`")
                    continue
                labels = set(TUPLE_KEY.findall(found.group(1)))
            names = [name]
            if kind == "histogram":
                names = [f"{name}_bucket", f"{name}_sum", f"{name}_count"]
            for n in names:
                metrics.setdefault(n, set()).update(labels)
            if kind == "histogram":
                metrics[f"{name}_bucket"].add("le")
    if not metrics:
        problem(str(crates), "no metrics macros found: is this the workspace's crates folder?")
    return metrics


def target_labels(scrape_config: dict) -> set[str]:
    """Labels Prometheus attaches to every series of the orderflow job."""
    labels = {"job", "instance"}
    for job in scrape_config.get("scrape_configs", []):
        for relabel in job.get("relabel_configs", []):
            target = relabel.get("target_label", "")
            if target and not target.startswith("__"):
                labels.add(target)
    return labels


# --- PromQL, as far as names go -------------------------------------------

TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
      | (?P<braces>\{(?:"(?:\\.|[^"\\])*"|[^}"])*\})
      | (?P<range>\[[^\]]*\])
      | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
      | (?P<number>\d[\w.]*)
      | (?P<other>.)""",
    re.X,
)
MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"")
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}
KEYWORDS = GROUPING | AGGREGATIONS | {"and", "or", "unless", "offset", "bool", "inf", "nan", "Inf", "NaN"}


def promql_names(expr: str) -> tuple[list[tuple[str, set[str]]], set[str]]:
    """([(metric, matched labels)], grouped labels) of a PromQL expression."""
    tokens = [
        (m.lastgroup, m.group())
        for m in TOKEN.finditer(expr)
        if m.lastgroup != "space"
    ]
    selectors: list[tuple[str, set[str]]] = []
    grouped: set[str] = set()
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ("", "")
        if kind == "ident" and text in GROUPING and following[1] == "(":
            j = i + 2
            while j < len(tokens) and tokens[j][1] != ")":
                if tokens[j][0] == "ident":
                    grouped.add(tokens[j][1])
                j += 1
            i = j + 1
            continue
        if kind == "ident" and text not in KEYWORDS and following[1] != "(":
            matched = set()
            if following[0] == "braces":
                matched = set(MATCHER.findall(following[1]))
                i += 1
            selectors.append((text, matched))
        i += 1
    return selectors, grouped


def check_expr(where: str, expr: str, metrics: dict[str, set[str]], targets: set[str]) -> None:
    known_labels = set().union(*metrics.values(), targets)
    selectors, grouped = promql_names(expr)
    for name, matched in selectors:
        if name not in metrics:
            problem(where, f"metric {name} is not exported by the crates (nor up or kube-state-metrics')")
            continue
        for label in sorted(matched - metrics[name] - targets):
            problem(where, f"{name} has no label {label} (it has: {', '.join(sorted(metrics[name] | targets))})")
    for label in sorted(grouped - known_labels):
        problem(where, f"grouping by {label}, a label no metric here has")


# --- rules and their tests ------------------------------------------------

def check_rules(monitoring: Path, metrics, targets) -> set[str]:
    rules_file = monitoring / "alerts.yaml"
    doc = yaml.safe_load(rules_file.read_text(encoding="utf-8"))
    alerts: set[str] = set()
    for group in doc["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            where = f"{rules_file}: {name}"
            check_expr(where, rule["expr"], metrics, targets)
            if "alert" not in rule:
                continue
            if name in alerts:
                problem(where, "alert name used twice")
            alerts.add(name)
            if not name.startswith("Orderflow"):
                problem(where, "alert names start with Orderflow (the dashboard's alert list filters on it)")
            if "for" not in rule:
                problem(where, "no `for:`: one bad scrape would page")
            if rule.get("labels", {}).get("severity") not in ("critical", "warning"):
                problem(where, "labels.severity must be critical or warning")
            for key in ("summary", "description"):
                if not rule.get("annotations", {}).get(key, "").strip():
                    problem(where, f"no {key} annotation")
    return alerts


def check_tests(monitoring: Path, alerts: set[str]) -> None:
    tests_file = monitoring / "alerts.test.yaml"
    doc = yaml.safe_load(tests_file.read_text(encoding="utf-8"))
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in doc.get("tests", []):
        for case in test.get("alert_rule_test", []):
            name = case["alertname"]
            if name not in alerts:
                problem(f"{tests_file}: {test.get('name')}", f"tests {name}, which alerts.yaml does not define")
            (firing if case.get("exp_alerts") else quiet).add(name)
    for name in sorted(alerts - firing):
        problem(str(tests_file), f"{name} is never tested firing")
    for name in sorted(alerts - quiet):
        problem(str(tests_file), f"{name} is never tested staying quiet")


# --- the dashboard ----------------------------------------------------------

GRAFANA_VARS = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$projector": ".*",
}
LABEL_VALUES = re.compile(r"^label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)$")


def all_panels(panels: list[dict]):
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def check_dashboard(monitoring: Path, promtool: str, metrics, targets) -> None:
    path = monitoring / "grafana" / "orderflow.json"
    try:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        problem(str(path), f"not JSON: {err}")
        return
    for key in ("uid", "title", "panels", "schemaVersion"):
        if key not in dashboard:
            problem(str(path), f"no {key}")
    variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
    if variables.get("datasource", {}).get("type") != "datasource":
        problem(str(path), "no datasource variable: the dashboard would be tied to one Grafana's data source uid")
    for name, variable in variables.items():
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        query = query.get("query", "") if isinstance(query, dict) else query or ""
        found = LABEL_VALUES.match(query.strip())
        if not found:
            problem(f"{path}: variable {name}", f"expected label_values(metric, label), got {query!r}")
            continue
        metric, label = found.groups()
        check_expr(f"{path}: variable {name}", f'{metric}{{{label}=""}}', metrics, targets)

    ids: set[int] = set()
    recording = []
    for panel in all_panels(dashboard.get("panels", [])):
        title = panel.get("title", "?")
        where = f"{path}: panel {title!r}"
        if panel.get("id") in ids:
            problem(where, f"panel id {panel.get('id')} used twice")
        ids.add(panel.get("id"))
        if "gridPos" not in panel:
            problem(where, "no gridPos")
        for target in panel.get("targets", []):
            if target.get("datasource", {}).get("uid") != "${datasource}":
                problem(where, "a query not on the ${datasource} variable")
            expr = target.get("expr", "")
            for var, value in GRAFANA_VARS.items():
                expr = expr.replace(var, value)
            if "$" in expr:
                problem(where, f"unknown Grafana variable in {target.get('expr')!r}")
                continue
            check_expr(where, expr, metrics, targets)
            recording.append({"record": f"dashboard:panel{panel.get('id')}:{target.get('refId', 'A')}", "expr": expr})
    if not recording:
        problem(str(path), "no queries found")
        return
    # promtool parses every query, as recording rules.
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as rules:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recording}]}, rules)
        rules.flush()
        out = subprocess.run([promtool, "check", "rules", rules.name], capture_output=True, text=True)
        if out.returncode != 0:
            problem(str(path), "a query does not parse:\n" + out.stdout + out.stderr)


# --- the kustomize output ---------------------------------------------------

def check_rendered(monitoring: Path, rendered: Path) -> None:
    wanted = {
        "orderflow-prometheus-rules": ("alerts.yaml", monitoring / "alerts.yaml"),
        "orderflow-grafana-dashboard": ("orderflow.json", monitoring / "grafana" / "orderflow.json"),
    }
    objects = [o for o in yaml.safe_load_all(rendered.read_text(encoding="utf-8")) if o]
    maps = {o["metadata"]["name"]: o for o in objects if o.get("kind") == "ConfigMap"}
    for name, (key, source) in wanted.items():
        cm = maps.get(name)
        if cm is None:
            problem(f"kustomize build {monitoring}", f"no ConfigMap {name}")
            continue
        if cm["metadata"].get("namespace") != "monitoring":
            problem(f"ConfigMap {name}", "not in the monitoring namespace")
        if cm.get("data", {}).get(key) != source.read_text(encoding="utf-8"):
            problem(f"ConfigMap {name}", f"data.{key} differs from {source}")
    dashboard = maps.get("orderflow-grafana-dashboard", {})
    if dashboard.get("metadata", {}).get("labels", {}).get("grafana_dashboard") != "1":
        problem("ConfigMap orderflow-grafana-dashboard", 'no label grafana_dashboard: "1" (the Grafana sidecar loads by it)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crates", type=Path, required=True)
    parser.add_argument("--monitoring", type=Path, required=True)
    parser.add_argument("--promtool", required=True)
    parser.add_argument("--rendered", type=Path, required=True)
    args = parser.parse_args()

    metrics = exported_metrics(args.crates)
    for name, labels in EXTERNAL.items():
        metrics.setdefault(name, set()).update(labels)
    scrape = yaml.safe_load((args.monitoring / "prometheus.yaml").read_text(encoding="utf-8"))
    targets = target_labels(scrape)

    alerts = check_rules(args.monitoring, metrics, targets)
    check_tests(args.monitoring, alerts)
    check_dashboard(args.monitoring, args.promtool, metrics, targets)
    check_rendered(args.monitoring, args.rendered)

    for line in problems:
        print(f"  {line}", file=sys.stderr)
    if not problems:
        print(f"  {len(alerts)} alerts, each tested firing and quiet; every metric and label is exported")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
