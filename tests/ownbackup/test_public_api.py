"""The public names of gdpr_daemon.ownbackup: a guard against accidental changes."""

from __future__ import annotations

import gdpr_daemon.ownbackup as ownbackup

REQUIRED = {
    "OwnBackupClient", "ClientConfig", "Endpoints", "SessionAuth", "OAuthAuth",
    "Service", "Backup", "BackupObject", "Job", "Seed", "SeedTemplate", "GdprSubmission",
    "OwnBackupError", "TransientError", "PermanentError", "AuthenticationError", "RateLimited",
    "ServerError", "ConnectionFailed", "RequestTimeout", "NotFound", "ClientError", "BadAnswer",
    "RetryPolicy", "classify", "region_url", "REGIONS", "VENDOR_TOKEN_URL", "VENDOR_CLIENT_ID",
}  # fmt: skip


def test_public_names_exported() -> None:
    """Every name of the agreed interface is importable from the package and in __all__."""
    assert REQUIRED <= set(ownbackup.__all__)
    for name in ownbackup.__all__:
        assert hasattr(ownbackup, name), name


def test_all_is_sorted_and_unique() -> None:
    """__all__ has no duplicates."""
    assert len(set(ownbackup.__all__)) == len(ownbackup.__all__)


def test_client_methods() -> None:
    """The client has one method per API call of the reference, plus health and lifecycle."""
    methods = {
        "list_services", "get_service", "gdpr_forget", "gdpr_rectify", "events", "backup_now",
        "backup_specific_objects_now", "anonymize", "anonymize_info",
        "list_backups", "get_backup", "backup_objects", "download", "export",
        "export_to_endpoint", "list_jobs", "get_job", "seeding_templates", "seed_info",
        "start_seed", "automations", "authenticate", "open", "close",
    }  # fmt: skip
    for name in methods:
        assert callable(getattr(ownbackup.OwnBackupClient, name)), name
