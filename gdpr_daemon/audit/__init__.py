"""The audit trail: the account event history pulled into Postgres, and auditors' reports.

``parse`` (pure: raw items -> typed rows or quarantine reasons), ``puller`` (the pull:
lock, pages, cursor), ``reports`` (streaming CSV, JSON and HTML reports).
"""

from gdpr_daemon.audit.puller import AccountMismatch, EventPuller, PullJob, PullResult, pull_logged

__all__ = ["AccountMismatch", "EventPuller", "PullJob", "PullResult", "pull_logged"]
