"""What the Prometheus tests share: finding promtool and prometheus, the metric names the
daemon exports, and the metric selectors a PromQL expression uses.

The selector scan is deliberately small (strings, ranges and grouping clauses removed,
then every identifier not called as a function nor a keyword is a metric name); that
the expressions parse at all is promtool's job, and the end-to-end test runs them on a
real Prometheus.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from gdpr_daemon import metrics

ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "config" / "prometheus"
ALERTS = PROM_DIR / "alerts.yaml"
ALERTS_TEST = PROM_DIR / "alerts_test.yaml"
DASHBOARD = ROOT / "config" / "grafana" / "gdpr-daemon.json"
OPERATIONS = ROOT / "docs" / "operations.md"

# Labels Prometheus adds to every scraped series.
TARGET_LABELS = frozenset({"job", "instance"})
# Series Prometheus makes itself for each target.
SYNTHETIC = {"up": frozenset(TARGET_LABELS)}
# Grafana's interval variables, replaced by a duration before anything else reads the expression.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}

_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"})
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w.:$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\{[^}]*\})?(\s*\()?")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def find_tool(name: str) -> str:
    """The path of ``name``; outside CI a missing tool skips the test, in CI it fails it."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = (
        f"{name} is not on PATH: install Debian's prometheus package "
        "(apt-get install --no-install-recommends prometheus), as .ci/run does"
    )
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [find_tool("promtool"), *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def exported_metrics() -> dict[str, frozenset[str]]:
    """Every sample name /metrics can carry -> the label names it can carry (target labels included)."""
    found: dict[str, frozenset[str]] = dict(SYNTHETIC)
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        name, kind = value._name, value._type
        labels = frozenset(value._labelnames) | TARGET_LABELS
        if kind == "counter":
            names = {f"{name}_total": labels, f"{name}_created": labels}
        elif kind == "histogram":
            names = {f"{name}_bucket": labels | {"le"}, f"{name}_sum": labels, f"{name}_count": labels,
                     f"{name}_created": labels}  # fmt: skip
        else:
            names = {name: labels}
        found.update(names)
    return found


def selectors(expr: str) -> list[tuple[str, frozenset[str]]]:
    """(metric name, label names matched on) for each metric selector in a PromQL expression."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = _GROUPING.sub(" ", text)
    found = []
    for m in _IDENT.finditer(text):
        name, matchers, call = m.group(1), m.group(2), m.group(3)
        if call or name.lower() in _KEYWORDS or re.fullmatch(r"\d+[smhdwy]", name):
            continue
        found.append((name, frozenset(_MATCHER.findall(matchers or ""))))
    return found


def unknown_names(expr: str) -> list[str]:
    """Metric names or matcher labels in ``expr`` that the daemon does not export; [] when all are known."""
    exported = exported_metrics()
    problems = []
    for name, labels in selectors(expr):
        if name not in exported:
            problems.append(f"metric {name}")
        elif labels - exported[name]:
            problems.append(f"label(s) {sorted(labels - exported[name])} of {name}")
    return problems


def alert_rules() -> list[dict]:
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_exprs(dashboard: dict) -> list[tuple[str, str]]:
    """(panel title, expr) for every query target of every panel, rows included."""
    found = []
    stack = list(dashboard.get("panels", []))
    while stack:
        panel = stack.pop(0)
        stack.extend(panel.get("panels", []))
        for target in panel.get("targets", []):
            found.append((panel.get("title", "?"), target["expr"]))
    return found


def for_promtool(expr: str) -> str:
    """``expr`` with Grafana's variables replaced, as Prometheus itself receives it."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr
