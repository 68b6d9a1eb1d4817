"""gdpr-daemon: submits GDPR forget and rectify requests to OwnBackup and keeps the audit trail."""

__version__ = "0.1.0"
