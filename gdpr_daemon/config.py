"""Settings: one model, read once at start-up, passed down frozen.

Sources, later ones winning: the defaults below, a TOML file (``--config PATH`` or
``GDPR_DAEMON_CONFIG``), then environment variables ``GDPR_DAEMON_<KEY>``.  In the TOML
file a key may be written flat (``database_url = ...``) or in the table named by its
first word (``[database]`` ``url = ...``).  Any problem is a :class:`ConfigError` whose
message is one sentence naming the key, its environment variable, and what is wrong.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import tomllib
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from gdpr_daemon.safetext import mask_url

ENV_PREFIX = "GDPR_DAEMON_"

REGIONS = (
    "app1", "useast2", "hipaa1", "hipaa4", "usgov2", "ca1", "ca4",
    "emea1", "emea2", "emea4", "uk1", "au1", "au4",
)  # fmt: skip

#: As the client's own default (gdpr_daemon.ownbackup.config), without importing the client here.
DEFAULT_MAX_RESPONSE_BYTES = 16 * 2**20

SECTIONS = ("database", "ownbackup", "queue", "events", "log", "health", "retention", "intake", "verify")


class ConfigError(Exception):
    """A configuration value is missing or wrong; the message says which and why."""


class Settings(BaseModel):
    """Every configuration key of gdpr-daemon.  Descriptions feed the README's reference."""

    # Every number has a lower and an upper bound: a value far outside what makes sense
    # (a backoff of 1e12 seconds, say) is a configuration error naming the key and the
    # range, never an overflow deep in the scheduler.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    database_url: str | None = Field(
        None, description="Postgres URL as libpq takes it (`postgresql://user@host:5432/db`)."
    )
    database_listen_url: str | None = Field(
        None,
        description="Direct Postgres URL for LISTEN when `database_url` goes through a "
        "transaction-mode pooler such as PgBouncer; defaults to `database_url`.",
    )
    database_migrate_url: str | None = Field(
        None,
        description="Postgres URL of the schema owner, used only by `gdpr-daemon migrate` (which also writes the "
        "retention floors); defaults to `database_url`. Lets `run` use a login of the `gdpr_daemon` role.",
    )
    database_pool_size: int = Field(10, ge=1, le=200, description="Connections in the pool.")

    ownbackup_url: str | None = Field(
        None, description="Explicit API base URL (wins over `ownbackup_region`)."
    )
    ownbackup_region: str | None = Field(
        None, description="OwnBackup region, e.g. `emea1`; the URL becomes `https://{region}.owndata.com`."
    )
    ownbackup_auth: Literal["session", "oauth"] = Field(
        "session", description="`session` (email and password) or `oauth` (API token)."
    )
    ownbackup_email: str | None = Field(None, description="Login email for session auth.")
    ownbackup_password: SecretStr | None = Field(
        None, description="Password for session auth. Never logged."
    )
    ownbackup_password_file: Path | None = Field(
        None,
        description="File holding the password (wins over `ownbackup_password`); a systemd "
        "credential `ownbackup_password` is read when present.",
    )
    ownbackup_api_token: SecretStr | None = Field(
        None, description="API token used as OAuth refresh token (oauth auth). Never logged."
    )
    ownbackup_token_url: str = Field(
        "https://auth.owndata.com/oauth2/aus4c3z3l8FqrbqDU4h7/v1/token",
        description="OAuth token URL: the vendor's, the same for every region (on another host than "
        "the API; https unless loopback or `ownbackup_allow_insecure_http`).",
    )
    ownbackup_client_id: str = Field(
        "0oa4c413eq8wwcEzP4h7", description="OAuth client id: the vendor's public client."
    )
    ownbackup_timeout_seconds: float = Field(
        30.0, gt=0, le=600, description="Whole-call timeout for one API call."
    )
    ownbackup_connect_timeout_seconds: float = Field(
        10.0, gt=0, le=120, description="Connect timeout for one API call."
    )
    ownbackup_max_response_bytes: int = Field(
        DEFAULT_MAX_RESPONSE_BYTES,
        ge=65536,
        le=2**30,
        description="The most of one API answer read into memory, in bytes (64 KiB to 1 GiB); a larger "
        "answer is refused as a bad answer without being read further.",
    )
    ownbackup_allow_insecure_http: bool = Field(
        False, description="Allow plain `http://` to a non-loopback host (never in production)."
    )
    ownbackup_endpoints: dict[str, str] = Field(
        default_factory=dict,
        description="Overrides of API paths by call name, e.g. `{gdpr_forget = \"/api/v2/...\"}`.",
    )

    queue_concurrency: int = Field(
        32, ge=1, le=1000, description="Submissions in flight at once, in this process."
    )
    queue_per_service_concurrency: int = Field(
        8, ge=1, le=1000, description="Submissions in flight at once to one service."
    )
    queue_max_attempts: int = Field(
        8, ge=1, le=100, description="Attempts before a request ends `failed`."
    )
    queue_backoff_base_seconds: float = Field(
        5.0, gt=0, le=3600, description="First retry delay; doubles each attempt, with jitter."
    )
    queue_backoff_max_seconds: float = Field(900.0, gt=0, le=86400, description="Longest retry delay.")
    queue_lease_seconds: float = Field(
        30.0, ge=2, le=60, description="Lease on a claimed request; renewed while it is worked on."
    )
    queue_poll_interval_seconds: float = Field(
        5.0, gt=0, le=3600, description="Fallback poll when no NOTIFY arrives."
    )
    queue_reaper_interval_seconds: float = Field(
        10.0, gt=0, le=3600,
        description="How often other processes' leases are looked at (and again as soon as the earliest expires); "
        "an expired claim goes back to `pending`.",
    )
    queue_services_refresh_seconds: float = Field(
        300.0, gt=0, le=86400, description="How often the account's service list is refreshed."
    )
    queue_shutdown_timeout_seconds: float = Field(
        20.0, gt=0, le=600, description="Drain bound on SIGTERM: in-flight calls get this long."
    )
    queue_erase_value_after_submit: bool = Field(
        True, description="Erase a rectify `value` once submitted, keeping its SHA-256."
    )

    events_pull_interval_seconds: float = Field(
        300.0, gt=0, le=86400, description="How often the account event history is pulled."
    )
    events_unconfirmed_after_hours: float = Field(
        24.0, gt=0, le=8760, description="A submitted request without a confirming event after this "
        "long is listed by `requests list --unconfirmed`."
    )
    verify_after_hours: float = Field(
        0.0, ge=0, le=8760, description="The daemon verifies each submitted request in the backups themselves "
        "(as `gdpr-daemon requests verify` does) this many hours after submission, and again after each newer "
        "backup while the record is still present. 0 turns the job off."
    )

    intake_require_approval: bool = Field(
        False,
        description="Four eyes: a new request waits in `awaiting_approval` until a second person "
        "approves it with `gdpr-daemon requests approve`.",
    )
    intake_holidays: list[date] | None = Field(
        None,
        description="Public holidays (`YYYY-MM-DD`) on which no deadline may fall; when set, the "
        "daemon makes table `gdpr_holidays` hold exactly these days. Unset: the table is kept by hand.",
    )

    retention_days: int = Field(
        365,
        ge=0,
        le=36500,
        description="Finished requests (submitted, failed, rejected, cancelled) unchanged for this many "
        "days lose their personal fields: record_id, value and comment are removed, their SHA-256 "
        "digests and the whole history stay. 0 keeps them.",
    )
    retention_history_days: int = Field(
        2190,
        ge=0,
        le=36500,
        description="History rows (`gdpr_request_log`) and account events (`audit_events`) older than "
        "this many days are deleted, oldest first, with the finished requests left without history; "
        "the hash chains record where they now start. 0 keeps them forever.",
    )
    retention_purge_interval_hours: float = Field(
        24.0, gt=0, le=8760, description="How often the daemon applies the retention periods."
    )

    log_format: Literal["json", "console"] = Field(
        "json", description="`json` lines for production, `console` for people."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")

    health_address: str | None = Field(
        None, description="`host:port` for /healthz, /readyz and /metrics; off when unset."
    )
    instance_name: str = Field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}",
        min_length=1,
        max_length=200,
        description="Name of this process in the request history (not used for leases).",
    )

    @field_validator("database_url", "database_listen_url", "database_migrate_url")
    @classmethod
    def _postgres_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        scheme = urlsplit(v).scheme
        if scheme not in ("postgresql", "postgres") and not scheme.startswith("postgresql+"):
            raise ValueError("must start with postgresql:// (a libpq URL)")
        return v

    @field_validator("intake_holidays", mode="before")
    @classmethod
    def _holiday_list(cls, v: Any) -> Any:
        if isinstance(v, str):  # from the environment: comma-separated dates
            return [part.strip() for part in v.split(",") if part.strip()]
        return v

    @field_validator("ownbackup_url", "ownbackup_token_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL with a host, like https://emea1.owndata.com")
        return v.rstrip("/")

    @field_validator("ownbackup_region")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        if v is not None and v not in REGIONS:
            raise ValueError(f"unknown region {v!r}; use one of {', '.join(REGIONS)}")
        return v

    @field_validator("health_address")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is None:
            return v
        _host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("must be host:port, like 0.0.0.0:8080")
        return v

    @model_validator(mode="after")
    def _backoff_order(self) -> Settings:
        if self.queue_backoff_max_seconds < self.queue_backoff_base_seconds:
            raise ValueError(
                "queue_backoff_max_seconds: must be at least queue_backoff_base_seconds "
                f"({self.queue_backoff_base_seconds:g})"
            )
        return self

    # ---- derived values -------------------------------------------------------------

    @property
    def api_base_url(self) -> str | None:
        if self.ownbackup_url:
            return self.ownbackup_url
        if self.ownbackup_region:
            return f"https://{self.ownbackup_region}.owndata.com"
        return None

    def require_database(self) -> str:
        if not self.database_url:
            raise ConfigError(
                "database_url (GDPR_DAEMON_DATABASE_URL) is not set: give the Postgres URL, "
                "like postgresql://gdpr@db.example.com/gdpr"
            )
        return self.database_url

    def migrate_database(self) -> str:
        """The URL `gdpr-daemon migrate` connects with: the schema owner's."""
        return self.database_migrate_url or self.require_database()

    def require_api(self) -> None:
        """Check that the API settings are complete enough to talk to OwnBackup."""
        base = self.api_base_url
        if not base:
            raise ConfigError(
                "ownbackup_url (GDPR_DAEMON_OWNBACKUP_URL) or ownbackup_region "
                "(GDPR_DAEMON_OWNBACKUP_REGION) must be set"
            )
        if self.ownbackup_auth == "session":
            if not self.ownbackup_email:
                raise ConfigError(
                    "ownbackup_email (GDPR_DAEMON_OWNBACKUP_EMAIL) is not set, and session auth needs it"
                )
            if self.ownbackup_password is None:
                raise ConfigError(
                    "ownbackup_password (GDPR_DAEMON_OWNBACKUP_PASSWORD or "
                    "GDPR_DAEMON_OWNBACKUP_PASSWORD_FILE) is not set, and session auth needs it"
                )
        elif self.ownbackup_api_token is None:
            raise ConfigError(
                "ownbackup_api_token (GDPR_DAEMON_OWNBACKUP_API_TOKEN) is not set, and oauth auth needs it"
            )
        host = urlsplit(base).hostname or ""
        if urlsplit(base).scheme == "http" and not self.ownbackup_allow_insecure_http and not is_loopback(host):
            raise ConfigError(
                f"ownbackup_url (GDPR_DAEMON_OWNBACKUP_URL) uses plain http to {host}; use https, "
                "or set ownbackup_allow_insecure_http = true for a test system"
            )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def env_name(key: str) -> str:
    return ENV_PREFIX + key.upper()


def _flatten_toml(data: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in SECTIONS and isinstance(value, Mapping):
            flat.update({f"{key}_{sub}": subvalue for sub, subvalue in value.items()})
        else:
            flat[key] = value
    return flat


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in Settings.model_fields:
        raw = environ.get(env_name(key))
        if raw is None or raw == "":
            continue
        if key == "ownbackup_endpoints":
            pairs = [p.split("=", 1) for p in raw.split(",") if p.strip()]
            if any(len(p) != 2 for p in pairs):
                raise ConfigError(
                    f"ownbackup_endpoints ({env_name(key)}): write name=/path pairs separated by commas"
                )
            values[key] = {k.strip(): v.strip() for k, v in pairs}
        else:
            values[key] = raw
    return values


def _credential_password(environ: Mapping[str, str]) -> Path | None:
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if directory:
        path = Path(directory) / "ownbackup_password"
        if path.is_file():
            return path
    return None


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Read the TOML file (if any) and the environment into one validated Settings."""
    environ = os.environ if environ is None else environ
    path = path or environ.get("GDPR_DAEMON_CONFIG") or None
    values: dict[str, Any] = {}
    if path:
        p = Path(path)
        try:
            with p.open("rb") as fh:
                values.update(_flatten_toml(tomllib.load(fh)))
        except FileNotFoundError:
            raise ConfigError(f"config file {p} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
    values.update(_from_env(environ))
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(values) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(
            f"unknown configuration key {unknown[0]!r}"
            + (f" in {path}" if path else "")
            + "; see the configuration reference in the README"
        )
    password_file = values.get("ownbackup_password_file") or _credential_password(environ)
    if password_file:
        try:
            secret = Path(password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(
                f"ownbackup_password_file (GDPR_DAEMON_OWNBACKUP_PASSWORD_FILE): cannot read "
                f"{password_file}: {exc.strerror}"
            ) from None
        values["ownbackup_password"] = secret
    try:
        return Settings(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else "?"
        msg = err["msg"].removeprefix("Value error, ")
        if not err["loc"] and ": " in msg:  # a rule across keys names its key first
            key, _, msg = msg.partition(": ")
            raise ConfigError(f"{key} ({env_name(key)}): {msg}") from None
        allowed = allowed_range(key)
        if allowed and err["type"] in _RANGE_ERRORS:
            msg = f"must be {allowed}"
        shown = "" if key in ("ownbackup_password", "ownbackup_api_token") else f" (got {_shown(err.get('input'))})"
        if key.startswith("database_") and key.endswith("_url"):
            shown = mask_url(shown)
        raise ConfigError(f"{key} ({env_name(key)}): {msg}{shown}") from None


_RANGE_ERRORS = frozenset({
    "greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number",
    "int_parsing", "int_from_float", "float_parsing", "int_type", "float_type",
})  # fmt: skip


def allowed_range(key: str) -> str | None:
    """``a number from 1 to 1000``: the bounds of a numeric setting, as a person reads them."""
    info = Settings.model_fields.get(key)
    if info is None or info.annotation not in (int, float):
        return None
    low = high = ""
    for bound in info.metadata:
        if isinstance(bound, Ge):
            low = f"from {_num(bound.ge)}"
        elif isinstance(bound, Gt):
            low = f"greater than {_num(bound.gt)}"
        elif isinstance(bound, Le):
            high = f"to {_num(bound.le)}" if low.startswith("from") else f"at most {_num(bound.le)}"
        elif isinstance(bound, Lt):
            high = f"below {_num(bound.lt)}"
    kind = "a whole number" if info.annotation is int else "a number"
    return " ".join(p for p in (kind, low, "and" if low and high and not high.startswith("to") else "", high) if p)


def _num(value: Any) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _shown(value: object) -> str:
    """The offending value, bounded (a pasted file must not fill the terminal)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
