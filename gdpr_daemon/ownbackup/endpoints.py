"""Where the OwnBackup API lives: regions, base URLs and the table of endpoint paths.

The paths are those of the vendor's API (a contract shared with the simulator); a deployment
whose account speaks slightly different paths overrides single entries with
:meth:`Endpoints.with_overrides` rather than patching the client.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

__all__ = ["REGIONS", "Endpoints", "check_base_url", "is_loopback_host", "region_url"]

#: The regions the vendor publishes; ``https://{region}.owndata.com``.
REGIONS: tuple[str, ...] = (
    "app1",
    "useast2",
    "hipaa1",
    "hipaa4",
    "usgov2",
    "ca1",
    "ca4",
    "emea1",
    "emea2",
    "emea4",
    "uk1",
    "au1",
    "au4",
)


def region_url(region: str) -> str:
    """The base URL of an OwnBackup region: ``region_url("emea1")`` is ``https://emea1.owndata.com``."""
    name = region.strip().lower()
    if name not in REGIONS:
        raise ValueError(
            f"{region!r} is not an OwnBackup region; valid regions are {', '.join(REGIONS)}."
        )
    return f"https://{name}.owndata.com"


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1: hosts whose traffic never leaves the machine."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str, *, what: str = "base URL", allow_insecure_http: bool = False) -> str:
    """The URL without a trailing slash, or ValueError saying what is wrong with it.

    Plain ``http://`` would send passwords, session ids and personal data in clear
    text, so it is refused unless the host is loopback or the operator says so.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"The OwnBackup {what} {url!r} is not an http(s) URL with a host, "
            f"such as https://emea1.owndata.com."
        )
    if parts.query or parts.fragment:
        raise ValueError(f"The OwnBackup {what} {url!r} must not have a query or fragment.")
    if parts.scheme == "http" and not allow_insecure_http and not is_loopback_host(parts.hostname):
        raise ValueError(
            f"The OwnBackup {what} {url!r} uses plain http://, which would send credentials "
            f"and personal data unencrypted; use https:// (or allow_insecure_http=True "
            f"for a test network)."
        )
    return url.strip().rstrip("/")


@dataclass(frozen=True)
class Endpoints:
    """Path templates of the API calls, one field per call, relative to the base URL.

    Placeholders are ``{service_id}``, ``{backup_id}``, ``{job_id}``, ``{seed_id}``,
    ``{template_id}`` and ``{anonymize_id}``; the client fills them in, quoted.
    """

    login: str = "/api/auth/v1/login"
    logout: str = "/api/auth/v1/logout"
    services: str = "/api/v1/services"
    service: str = "/api/v1/services/{service_id}"
    backup_now: str = "/api/v1/services/{service_id}/backup_now"
    backup_specific_objects_now: str = "/api/v1/services/{service_id}/backup_specific_objects_now"
    backups: str = "/api/v1/services/{service_id}/backups"
    backup: str = "/api/v1/services/{service_id}/backups/{backup_id}"
    backup_objects: str = "/api/v1/services/{service_id}/backups/{backup_id}/objects"
    export: str = "/api/v1/services/{service_id}/backups/{backup_id}/export"
    export_to_endpoint: str = "/api/v1/services/{service_id}/backups/{backup_id}/export_to_endpoint"
    gdpr_rectify: str = "/api/v1/services/{service_id}/gdpr/rectify"
    gdpr_forget: str = "/api/v1/services/{service_id}/gdpr/forget"
    jobs: str = "/api/v1/jobs"
    job: str = "/api/v1/jobs/{job_id}"
    events: str = "/api/v1/events"
    seeding_templates: str = "/api/v1/seeding/templates"
    seed: str = "/api/v1/seeding/seed/{seed_id}"
    start_seed: str = "/api/v1/seeding/templates/{template_id}/seed"
    anonymize: str = "/api/v1/seeding/templates/{template_id}/anonymize"
    anonymize_job: str = "/api/v1/seeding/anonymize/{anonymize_id}"
    automations: str = "/api/v1/services/{service_id}/automations"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            path = getattr(self, f.name)
            if not isinstance(path, str) or not path.startswith("/"):
                raise ValueError(
                    f"The OwnBackup endpoint path for {f.name} must be a string starting "
                    f"with '/', not {path!r}."
                )

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The call names, in table order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    def with_overrides(self, overrides: Mapping[str, str]) -> Endpoints:
        """A copy with some paths replaced; an unknown call name is a ValueError."""
        unknown = sorted(set(overrides) - set(self.names()))
        if unknown:
            raise ValueError(
                f"{unknown[0]!r} is not an OwnBackup endpoint name; known names are "
                f"{', '.join(self.names())}."
            )
        return dataclasses.replace(self, **dict(overrides))

    def path(self, name: str, **params: object) -> str:
        """The path of call ``name`` with its placeholders filled in and quoted."""
        template: str = getattr(self, name)
        quoted = {key: quote(str(value), safe="") for key, value in params.items()}
        try:
            return template.format(**quoted)
        except (KeyError, IndexError) as exc:
            raise ValueError(
                f"The OwnBackup endpoint path for {name} ({template!r}) has a placeholder "
                f"the client does not fill: {exc}."
            ) from exc
