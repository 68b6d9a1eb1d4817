"""config/prometheus: the alerting rules, checked and unit-tested by Prometheus's own promtool,
and held to the project's conventions (severity, what to do, a runbook entry, exported metrics)."""

from __future__ import annotations

import re

import yaml

from tests.deploy.promql import (
    ALERTS,
    ALERTS_TEST,
    OPERATIONS,
    PROM_DIR,
    alert_rules,
    promtool,
    selectors,
    unknown_names,
)

# Gauges read from the database at scrape time: every replica reports the same value.
DATABASE_GAUGES = frozenset({
    "gdpr_daemon_requests",
    "gdpr_daemon_queue_depth",
    "gdpr_daemon_oldest_pending_age_seconds",
    "gdpr_daemon_requests_overdue",
    "gdpr_daemon_requests_due_soon",
    "gdpr_daemon_requests_unconfirmed",
    "gdpr_daemon_event_cursor",
    "gdpr_daemon_last_event_pull_timestamp_seconds",
})  # fmt: skip


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def runbook_anchors() -> set[str]:
    return {
        github_anchor(line.lstrip("#"))
        for line in OPERATIONS.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }


def test_promtool_check_rules():
    """`promtool check rules` accepts the file and finds every rule in it."""
    proc = promtool("check", "rules", str(ALERTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in proc.stdout


def test_promtool_unit_tests_pass():
    """`promtool test rules` runs the unit tests (inputs, expected alerts, not-firing cases) and all pass."""
    proc = promtool("test", "rules", ALERTS_TEST.name, cwd=PROM_DIR)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout and "FAILED" not in proc.stdout


def test_unit_tests_cover_every_alert_firing_and_not_firing():
    """Every alert has at least one unit test where it fires and one where it must not."""
    doc = yaml.safe_load(ALERTS_TEST.read_text(encoding="utf-8"))
    assert doc["rule_files"] == ["alerts.yaml"]
    fires: set[str] = set()
    silent: set[str] = set()
    for test in doc["tests"]:
        for case in test.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {r["alert"] for r in alert_rules()}
    assert names - fires == set(), "alerts without a firing case"
    assert names - silent == set(), "alerts without a not-firing case"
    assert (fires | silent) <= names, "tests of alerts that do not exist"


def test_the_unit_tests_can_fail(tmp_path):
    """The unit tests catch a broken rule: with sum() instead of max() over replicas, they fail."""
    broken = ALERTS.read_text(encoding="utf-8").replace(
        "max(gdpr_daemon_requests_overdue)", "sum(gdpr_daemon_requests_overdue)"
    )
    assert broken != ALERTS.read_text(encoding="utf-8")
    (tmp_path / "alerts.yaml").write_text(broken, encoding="utf-8")
    (tmp_path / "alerts_test.yaml").write_text(ALERTS_TEST.read_text(encoding="utf-8"), encoding="utf-8")
    proc = promtool("test", "rules", "alerts_test.yaml", cwd=tmp_path)
    assert proc.returncode != 0 and "GdprRequestOverdue" in proc.stdout + proc.stderr


def test_every_alert_has_severity_summary_what_to_do_and_a_runbook():
    """Each alert: a severity label, a summary, a description naming a gdpr-daemon command, a runbook entry."""
    anchors = runbook_anchors()
    names = [r["alert"] for r in alert_rules()]
    assert len(names) == len(set(names)), "alert names are unique"
    for rule in alert_rules():
        name, ann = rule["alert"], rule["annotations"]
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert ann["summary"].strip() and "\n" not in ann["summary"], name
        assert re.search(r"`gdpr-daemon [a-z]", ann["description"]), f"{name}: no gdpr-daemon command to run"
        assert ann["runbook_url"] == f"docs/operations.md#{name.lower()}", name
        assert name.lower() in anchors, f"docs/operations.md has no section for {name}"
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "")), f"{name}: a `for:` keeps one bad scrape from paging"


def test_the_issue_asks_for_these_alerts():
    """Every alert the issue lists exists (deadlines, a person needed, queue, events, API, unconfirmed, no replica)."""
    names = {r["alert"] for r in alert_rules()}
    assert {
        "GdprRequestOverdue", "GdprRequestDueSoon", "GdprRequestsNeedAPerson", "GdprQueueStuck",
        "GdprEventHistoryStale", "GdprApiCredentialsRefused", "GdprApiErrors", "GdprUnconfirmedSubmissions",
        "GdprDaemonDown",
    } <= names  # fmt: skip


def test_rules_name_only_metrics_the_daemon_exports():
    """Every metric and matcher label in the rules is one the daemon exports (or Prometheus's `up`)."""
    for rule in alert_rules():
        assert selectors(rule["expr"]), rule["alert"]
        assert unknown_names(rule["expr"]) == [], rule["alert"]


def test_the_scan_finds_unknown_names():
    """The exported-names check is not blind: a misspelt metric or label is reported."""
    assert unknown_names('max(gdpr_daemon_requests_overdue) > 0 and on() rate(gdpr_daemon_api_calls_total[5m])') == []
    assert unknown_names("max(gdpr_daemon_request_overdue) > 0") == ["metric gdpr_daemon_request_overdue"]
    assert unknown_names('sum(gdpr_daemon_requests{state="failed"})') == [
        "label(s) ['state'] of gdpr_daemon_requests"
    ]


def test_database_gauges_are_aggregated_with_max():
    """Gauges every replica reports alike are read through max(), never sum(), as the README says."""
    for rule in alert_rules():
        expr = " ".join(rule["expr"].split())
        for name, _ in selectors(expr):
            if name not in DATABASE_GAUGES:
                continue
            for m in re.finditer(rf"(\w+)(?:\s+by\s*\([^)]*\))?\s*\(\s*{name}\b", expr):
                assert m.group(1) == "max", f"{rule['alert']}: {name} inside {m.group(1)}()"
            assert re.search(rf"max(?:\s+by\s*\([^)]*\))?\s*\(\s*{name}\b", expr), f"{rule['alert']}: {name}"
