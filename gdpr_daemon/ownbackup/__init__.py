"""Async client of the OwnBackup API: typed calls, one error tree, pure retry decisions.

Only this package knows HTTP.  The rest of the daemon uses::

    from gdpr_daemon.ownbackup import OwnBackupClient, ClientConfig, SessionAuth

    config = ClientConfig(base_url=region_url("emea1"), auth=SessionAuth(email, password))
    async with OwnBackupClient(config) as client:
        receipt = await client.gdpr_forget(12415, record_id="003...", table_name="Contact")

The error tree is documented in :mod:`gdpr_daemon.ownbackup.errors`, the retry rules
in :mod:`gdpr_daemon.ownbackup.retry`.
"""

from .arguments import EXPORT_FORMATS, SEEDING_METHODS, SQL_DIALECTS
from .auth import VENDOR_CLIENT_ID, VENDOR_TOKEN_URL, OAuthAuth, SessionAuth
from .client import OwnBackupClient
from .config import ClientConfig
from .endpoints import REGIONS, Endpoints, region_url
from .errors import (
    AuthenticationError,
    BadAnswer,
    ClientError,
    ConnectionFailed,
    NotFound,
    OwnBackupError,
    PermanentError,
    RateLimited,
    RequestTimeout,
    ServerError,
    TransientError,
)
from .health import ApiHealth
from .models import Backup, BackupObject, GdprSubmission, Job, Seed, SeedTemplate, Service
from .retry import RetryPolicy, classify, parse_retry_after

__all__ = [
    "EXPORT_FORMATS",
    "REGIONS",
    "SEEDING_METHODS",
    "SQL_DIALECTS",
    "VENDOR_CLIENT_ID",
    "VENDOR_TOKEN_URL",
    "ApiHealth",
    "AuthenticationError",
    "Backup",
    "BackupObject",
    "BadAnswer",
    "ClientConfig",
    "ClientError",
    "ConnectionFailed",
    "Endpoints",
    "GdprSubmission",
    "Job",
    "NotFound",
    "OAuthAuth",
    "OwnBackupClient",
    "OwnBackupError",
    "PermanentError",
    "RateLimited",
    "RequestTimeout",
    "RetryPolicy",
    "Seed",
    "SeedTemplate",
    "ServerError",
    "Service",
    "SessionAuth",
    "TransientError",
    "classify",
    "parse_retry_after",
    "region_url",
]
