"""Fault injection for the OwnBackup API simulator: the configuration and the decisions.

:class:`FaultConfig` says what should go wrong; :func:`decide` turns it, a random
generator and the running :class:`FaultCounters` into a :class:`FaultDecision` for one
call.  The decisions are pure: the same config, the same generator state and the same
counters give the same decision, so a seeded run is reproducible and every branch can be
unit-tested without a server.

Faults apply to ``/api/...`` calls only, never to ``/_simulator/`` nor the OAuth token path.
What each field does, in the order the middleware applies it:

``latency_ms`` / ``latency_jitter_ms``
    added before every call is handled (jitter: uniform 0..jitter extra).
``burst_429`` / ``rate_429`` / ``retry_after_s``
    the next ``burst_429`` calls, then each call with probability ``rate_429``, answer
    429 with ``Retry-After: retry_after_s`` (integer seconds, 0 allowed) and do nothing.
``rate_5xx``
    probability that a call answers 500, 502 or 503 without doing anything; the body is
    an HTML error page half the time and the JSON error shape otherwise.
``failing_services`` / ``rejecting_services``
    GDPR calls to these service ids always answer 500, respectively 400 with a message.
``session_expiry_after_calls``
    a session (or bearer token) dies after this many calls: the next call gets 401.
``malformed_rate`` / ``malformed_mode``
    probability that a successful JSON answer is spoiled *after* the call was carried
    out: ``truncated_json`` (cut in half), ``html_200`` (an HTML page with status 200),
    ``missing_id`` (``id``, ``job_id``, ``session_id`` and ``event_id`` removed) or
    ``any`` (one of those three at random).
``hang_ms`` / ``hang_rate``
    with probability ``hang_rate`` the call is carried out at once and its answer is held
    back for ``hang_ms``: what a client sees when it times out on a call that worked.
``seed``
    seeds the simulator's fault generator when the config is installed (``None``: keep
    the generator seeded from the simulator's own seed).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MALFORMED_MODES = ("truncated_json", "html_200", "missing_id")
ALL_MALFORMED_MODES = (*MALFORMED_MODES, "any")
ERROR_STATUSES_5XX = (500, 502, 503)

_INT_FIELDS = (
    "latency_ms",
    "latency_jitter_ms",
    "burst_429",
    "retry_after_s",
    "session_expiry_after_calls",
    "hang_ms",
)
_RATE_FIELDS = ("rate_5xx", "rate_429", "malformed_rate", "hang_rate")
_SET_FIELDS = ("failing_services", "rejecting_services")


def _to_id_set(value: Iterable[Any] | None) -> frozenset[int]:
    if value is None:
        return frozenset()
    if isinstance(value, str | bytes | int):
        raise ValueError("service id sets must be lists of integers")
    return frozenset(int(v) for v in value)


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """What should go wrong; immutable, replace it as a whole (``dataclasses.replace``)."""

    rate_5xx: float = 0.0
    latency_ms: int = 0
    latency_jitter_ms: int = 0
    burst_429: int = 0
    rate_429: float = 0.0
    retry_after_s: int = 1
    session_expiry_after_calls: int = 0
    # Any collection of ids is accepted; it is stored as a frozenset.
    failing_services: Collection[int] = field(default_factory=frozenset)
    rejecting_services: Collection[int] = field(default_factory=frozenset)
    malformed_rate: float = 0.0
    malformed_mode: str = "truncated_json"
    hang_ms: int = 0
    hang_rate: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in _RATE_FIELDS:
            rate = float(getattr(self, name))
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be a probability between 0 and 1, not {rate}")
            object.__setattr__(self, name, rate)
        for name in _INT_FIELDS:
            raw = getattr(self, name)
            if isinstance(raw, bool) or int(raw) != raw or int(raw) < 0:
                raise ValueError(f"{name} must be a non-negative integer, not {raw!r}")
            object.__setattr__(self, name, int(raw))
        for name in _SET_FIELDS:
            object.__setattr__(self, name, _to_id_set(getattr(self, name)))
        if self.malformed_mode not in ALL_MALFORMED_MODES:
            raise ValueError(
                f"malformed_mode must be one of {', '.join(ALL_MALFORMED_MODES)}, "
                f"not {self.malformed_mode!r}"
            )
        if self.seed is not None and (isinstance(self.seed, bool) or int(self.seed) != self.seed):
            raise ValueError(f"seed must be an integer or null, not {self.seed!r}")

    def to_json(self) -> dict[str, Any]:
        """The config as JSON-ready data (sets become sorted lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = sorted(value) if isinstance(value, frozenset) else value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultConfig:
        """Build a config from JSON data; unknown keys are an error (``ValueError``)."""
        return cls().updated(data)

    def updated(self, changes: Mapping[str, Any]) -> FaultConfig:
        """A copy with some fields changed; unknown keys are an error (``ValueError``)."""
        if not isinstance(changes, Mapping):
            raise ValueError("the fault config must be a JSON object")
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}")
        try:
            return dataclasses.replace(self, **dict(changes))
        except TypeError as exc:
            raise ValueError(str(exc)) from exc


@dataclass(frozen=True, slots=True)
class FaultCounters:
    """The running state faults depend on: how many calls of the 429 burst are left."""

    burst_429_left: int = 0

    @classmethod
    def start(cls, config: FaultConfig) -> FaultCounters:
        return cls(burst_429_left=config.burst_429)


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What to do to one call.

    ``status`` set: answer that error instead of handling the call (``html`` picks an HTML
    body; ``retry_after_s`` goes into ``Retry-After``).  Otherwise handle the call after
    ``delay_s``, hold the answer back ``hang_s`` and spoil it by ``malformed`` if set.
    """

    delay_s: float = 0.0
    status: int | None = None
    message: str = ""
    html: bool = False
    retry_after_s: int | None = None
    hang_s: float = 0.0
    malformed: str | None = None


NO_FAULT = FaultDecision()


def decide(
    config: FaultConfig,
    rng: random.Random,
    counters: FaultCounters,
    *,
    service_id: int | None = None,
    gdpr: bool = False,
) -> tuple[FaultDecision, FaultCounters]:
    """Decide the faults of one API call; return the decision and the new counters.

    The generator is always drawn the same number of times, so changing one rate does not
    shift the random choices of the others in a seeded run.
    """
    r_429, r_5xx, r_status, r_html, r_mal, r_mode, r_jitter, r_hang = (
        rng.random() for _ in range(8)
    )
    delay_s = (config.latency_ms + r_jitter * config.latency_jitter_ms) / 1000.0

    if counters.burst_429_left > 0 or r_429 < config.rate_429:
        left = max(counters.burst_429_left - 1, 0)
        decision = FaultDecision(
            delay_s=delay_s,
            status=429,
            message="rate limit exceeded, retry later",
            retry_after_s=config.retry_after_s,
        )
        return decision, dataclasses.replace(counters, burst_429_left=left)

    if r_5xx < config.rate_5xx:
        status = ERROR_STATUSES_5XX[min(int(r_status * 3), 2)]
        decision = FaultDecision(
            delay_s=delay_s,
            status=status,
            message="the service is temporarily unavailable",
            html=r_html < 0.5,
        )
        return decision, counters

    if gdpr and service_id is not None:
        if service_id in config.failing_services:
            message = f"internal error while processing the request for service_id {service_id}"
            return FaultDecision(delay_s=delay_s, status=500, message=message), counters
        if service_id in config.rejecting_services:
            message = f"service_id {service_id} does not accept GDPR requests at this time"
            return FaultDecision(delay_s=delay_s, status=400, message=message), counters

    malformed = None
    if r_mal < config.malformed_rate:
        mode = config.malformed_mode
        malformed = MALFORMED_MODES[min(int(r_mode * 3), 2)] if mode == "any" else mode
    hang_s = config.hang_ms / 1000.0 if config.hang_ms and r_hang < config.hang_rate else 0.0
    if not (delay_s or malformed or hang_s):
        return NO_FAULT, counters
    return FaultDecision(delay_s=delay_s, hang_s=hang_s, malformed=malformed), counters


def session_expired(config: FaultConfig, calls_so_far: int) -> bool:
    """True when a session that has already made ``calls_so_far`` calls must die now."""
    limit = config.session_expiry_after_calls
    return limit > 0 and calls_so_far >= limit
