"""Auditors' and the DPO's reports, streamed as CSV, JSON or self-contained HTML.

``audit`` (the account events of a period), ``requests`` (one line per GDPR request with
the summary), ``common`` (cells, redaction, the output file), ``html`` and ``charts``
(the page and its inline SVG).  No report ever shows a rectify value.
"""

from gdpr_daemon.audit.reports.audit import write_audit_report
from gdpr_daemon.audit.reports.common import FORMATS, ReportResult, open_output
from gdpr_daemon.audit.reports.requests import write_requests_report
from gdpr_daemon.db.audit_reports import AuditFilters

__all__ = ["FORMATS", "AuditFilters", "ReportResult", "open_output", "write_audit_report", "write_requests_report"]
