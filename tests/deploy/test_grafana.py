"""config/grafana: a dashboard Grafana can import, whose every query Prometheus parses and
names only metrics the daemon exports."""

from __future__ import annotations

import json
import re
from itertools import combinations

import yaml

from tests.deploy.promql import DASHBOARD, dashboard_exprs, for_promtool, promtool, selectors, unknown_names

PANEL_TYPES = {"row", "stat", "timeseries", "gauge", "bargauge", "table", "text"}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def all_panels(dash: dict) -> list[dict]:
    found = []
    for panel in dash["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def rules_file_of(exprs: list[str]) -> str:
    """A Prometheus rules file with one recording rule per expression: promtool parses each."""
    rules = [{"record": f"gdpr_dashboard:query_{i}", "expr": for_promtool(e)} for i, e in enumerate(exprs)]
    return yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, sort_keys=False)


def test_dashboard_is_dashboard_json():
    """Valid JSON with what Grafana's import needs: title, uid, schema version, time, a datasource variable."""
    dash = dashboard()
    assert dash["title"] and re.fullmatch(r"[a-z0-9-]{1,40}", dash["uid"])
    assert isinstance(dash["schemaVersion"], int) and dash["schemaVersion"] >= 30
    assert dash["time"]["from"] and dash["time"]["to"]
    assert "id" not in dash or dash["id"] is None, "an id ties the file to one Grafana database"
    (var,) = [v for v in dash["templating"]["list"] if v["name"] == "datasource"]
    assert var["type"] == "datasource" and var["query"] == "prometheus"


def test_panels_are_well_formed_and_do_not_overlap():
    """Panels: unique ids, known types, inside the grid, no overlap, the datasource variable, unique refIds."""
    panels = all_panels(dashboard())
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for p in panels:
        assert p["type"] in PANEL_TYPES, p["title"]
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24 and g["h"] > 0 and g["y"] >= 0, p["title"]
        if p["type"] == "row":
            continue
        assert p["title"] and p.get("description"), p["id"]
        assert p["datasource"] == DATASOURCE, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == DATASOURCE and t["expr"].strip(), p["title"]
    for a, b in combinations(panels, 2):
        ga, gb = a["gridPos"], b["gridPos"]
        apart = (ga["x"] + ga["w"] <= gb["x"] or gb["x"] + gb["w"] <= ga["x"]
                 or ga["y"] + ga["h"] <= gb["y"] or gb["y"] + gb["h"] <= ga["y"])  # fmt: skip
        assert apart, f"{a['title']!r} overlaps {b['title']!r}"


def test_every_query_parses(tmp_path):
    """promtool parses every panel's PromQL (Grafana's interval variables replaced, as Grafana sends it)."""
    exprs = [e for _, e in dashboard_exprs(dashboard())]
    assert len(exprs) >= 10
    rules = tmp_path / "dashboard-queries.yaml"
    rules.write_text(rules_file_of(exprs), encoding="utf-8")
    proc = promtool("check", "rules", str(rules))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in proc.stdout


def test_the_parse_check_rejects_a_broken_query(tmp_path):
    """The promtool check is not blind: an unbalanced query is refused."""
    rules = tmp_path / "broken.yaml"
    rules.write_text(rules_file_of(["sum(rate(gdpr_daemon_submissions_total[$__rate_interval])"]), encoding="utf-8")
    assert promtool("check", "rules", str(rules)).returncode != 0


def test_every_query_names_only_exported_metrics():
    """Every metric and matcher label in the dashboard is one the daemon exports (or Prometheus's `up`)."""
    for title, expr in dashboard_exprs(dashboard()):
        assert selectors(expr), title
        assert unknown_names(expr) == [], title


def test_dashboard_shows_what_the_issue_asks_for():
    """The dashboard shows every figure the issue lists, from queue by status to events ingested and cursor lag."""
    used = {name for _, expr in dashboard_exprs(dashboard()) for name, _ in selectors(expr)}
    exprs = " ".join(expr for _, expr in dashboard_exprs(dashboard()))
    assert {
        "gdpr_daemon_requests", "gdpr_daemon_oldest_pending_age_seconds", "gdpr_daemon_submissions_total",
        "gdpr_daemon_api_call_seconds_bucket", "gdpr_daemon_api_retries_total", "gdpr_daemon_api_relogins_total",
        "gdpr_daemon_requests_overdue", "gdpr_daemon_requests_due_soon", "gdpr_daemon_events_ingested_total",
        "gdpr_daemon_last_event_pull_timestamp_seconds",
    } <= used  # fmt: skip
    assert "max by (status) (gdpr_daemon_requests)" in exprs
    assert "sum by (outcome)" in exprs and "by (le, endpoint)" in exprs
