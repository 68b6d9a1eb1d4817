"""Proving erasures in the backups themselves: a submitted request against a later backup.

``scan`` (pure: CSV chunks -> whether the record, or its new value, is there),
``verifier`` (one request: which backup, which section, what the history says), ``job``
(the daemon's optional periodic verification, ``verify_after_hours``).
"""

from gdpr_daemon.verify.verifier import (
    STILL_PRESENT_PREFIX,
    VERIFIED_PREFIX,
    BackupApi,
    Verification,
    VerifyError,
    VerifyTarget,
    verify_request,
)

__all__ = [
    "STILL_PRESENT_PREFIX",
    "VERIFIED_PREFIX",
    "BackupApi",
    "Verification",
    "VerifyError",
    "VerifyTarget",
    "verify_request",
]
