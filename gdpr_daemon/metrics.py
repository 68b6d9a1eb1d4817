"""Prometheus metrics, defined once.

Every part of the daemon updates these module-level metrics; the health server exposes
them at ``/metrics``.  Gauges that describe the database (queue depth, oldest pending,
overdue) are refreshed from Postgres at scrape time by the health server, not here.
"""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)
DUE_SOON_DAYS = 7  # the window of gdpr_daemon_requests_due_soon, as `gdpr-daemon status` counts it

API_LATENCY = Histogram(
    "gdpr_daemon_api_call_seconds",
    "Latency of OwnBackup API calls, by endpoint name.",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
API_RETRIES = Counter(
    "gdpr_daemon_api_retries_total",
    "API calls repeated after a transient error, by endpoint name.",
    ["endpoint"],
    registry=REGISTRY,
)
API_RELOGINS = Counter(
    "gdpr_daemon_api_relogins_total",
    "Authentications repeated because the API answered 401.",
    registry=REGISTRY,
)
API_CALLS = Counter(
    "gdpr_daemon_api_calls_total",
    "OwnBackup API calls by endpoint name and answer: 2xx, 3xx, 4xx, 5xx, or none (no answer: "
    "connection failed or timed out).",
    ["endpoint", "status_class"],
    registry=REGISTRY,
)
API_AUTH_FAILURES = Counter(
    "gdpr_daemon_api_auth_failures_total",
    "Times the API refused the credentials (login refused, or 401 again right after a fresh login).",
    registry=REGISTRY,
)
API_UP = Gauge(
    "gdpr_daemon_api_up",
    "1 when this process's last OwnBackup API contact succeeded (as /readyz's api check), else 0.",
    registry=REGISTRY,
)
SUBMISSIONS = Counter(
    "gdpr_daemon_submissions_total",
    "Outcomes of submission attempts: submitted, retry, failed, rejected, late.",
    ["outcome"],
    registry=REGISTRY,
)
EVENTS_INGESTED = Counter(
    "gdpr_daemon_events_ingested_total",
    "Account events stored in audit_events.",
    registry=REGISTRY,
)
EVENTS_QUARANTINED = Counter(
    "gdpr_daemon_events_quarantined_total",
    "Malformed account events put into quarantine.",
    registry=REGISTRY,
)
EVENT_CURSOR = Gauge(
    "gdpr_daemon_event_cursor",
    "The last event_id stored for the account.",
    registry=REGISTRY,
)
LAST_PULL = Gauge(
    "gdpr_daemon_last_event_pull_timestamp_seconds",
    "Unix time of the last successful event pull.",
    registry=REGISTRY,
)
EVENTS_PULL_INTERVAL = Gauge(
    "gdpr_daemon_events_pull_interval_seconds",
    "The configured events_pull_interval_seconds (for alerting on a stale event history).",
    registry=REGISTRY,
)

# ---- refreshed from Postgres at scrape time (gdpr_daemon.health, SQL in db/stats.py) ----
# Every replica reports the same database-wide values: aggregate these with max(), not sum().

REQUESTS_BY_STATUS = Gauge(
    "gdpr_daemon_requests",
    "Requests in gdpr_requests, by status (the whole table, not this process).",
    ["status"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "gdpr_daemon_queue_depth",
    "Requests in status pending (due now or waiting for a retry).",
    registry=REGISTRY,
)
OLDEST_PENDING_AGE = Gauge(
    "gdpr_daemon_oldest_pending_age_seconds",
    "Seconds since the oldest pending request was created; 0 when none is pending.",
    registry=REGISTRY,
)
REQUESTS_OVERDUE = Gauge(
    "gdpr_daemon_requests_overdue",
    "Requests past their due date and not submitted or cancelled "
    "(as `gdpr-daemon requests list --overdue`).",
    registry=REGISTRY,
)
REQUESTS_DUE_SOON = Gauge(
    "gdpr_daemon_requests_due_soon",
    f"Requests not submitted or cancelled whose due date is within the next {DUE_SOON_DAYS} days "
    "(not yet overdue; as `gdpr-daemon status`).",
    registry=REGISTRY,
)
REQUESTS_UNCONFIRMED = Gauge(
    "gdpr_daemon_requests_unconfirmed",
    "Requests submitted longer ago than events_unconfirmed_after_hours that no OwnBackup event has "
    "confirmed (as `gdpr-daemon requests list --unconfirmed`).",
    registry=REGISTRY,
)
DATABASE_UP = Gauge(
    "gdpr_daemon_database_up",
    "1 when the scrape-time database query succeeded, else 0 (the other database gauges are then stale).",
    registry=REGISTRY,
)


_STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


@functools.cache
def api_call_counter(endpoint: str, status: int | None) -> Any:
    """The API_CALLS child for an endpoint and an HTTP status (None: no answer), looked up once."""
    status_class = "none" if status is None else _STATUS_CLASSES.get(status // 100, "other")
    return API_CALLS.labels(endpoint=endpoint, status_class=status_class)
