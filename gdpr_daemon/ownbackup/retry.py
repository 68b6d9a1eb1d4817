"""Retry decisions, as pure functions of (error, attempt number, random source, now).

The client uses them for its idempotent GET calls; the request queue uses the same
functions to compute ``next_attempt_at`` for the POSTs it retries durably, so the
two cannot disagree about what is worth another try.

Attempts are numbered from 1: ``attempt`` is how many attempts have been made (and
failed) so far.  With the defaults a call is tried at most ``1 + max_retries`` = 5
times, waiting about 1, 2, 4 and 8 seconds between tries.

Jitter.  The exponential backoff ``b = min(max_delay, base * factor ** (attempt - 1))``
is spread over ``[b * (1 - jitter), b]``: ``jitter=0.5`` (the default) is the "equal
jitter" scheme, ``jitter=1.0`` is "full jitter", ``jitter=0`` is no jitter.  Replicas
that failed together therefore do not retry together, while every wait keeps at least
half its backoff.  A 429's ``Retry-After`` is a floor: the delay is never shorter.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal

import aiohttp

from .errors import OwnBackupError, PermanentError, RateLimited, TransientError

__all__ = ["Classification", "RetryPolicy", "classify", "parse_retry_after"]

Classification = Literal["transient", "permanent"]


def classify(exc: BaseException) -> Classification:
    """``"transient"`` when trying again later may succeed, else ``"permanent"``.

    Our own errors say it by their class.  Raw network errors that escaped translation
    (timeouts, refused or dropped connections) are transient; anything else, such as a
    bug, is permanent, so that it is looked at rather than retried for ever.
    """
    if isinstance(exc, TransientError):
        return "transient"
    if isinstance(exc, PermanentError | OwnBackupError):
        return "permanent"
    if isinstance(
        exc,
        TimeoutError | ConnectionError | aiohttp.ClientConnectionError | aiohttp.ClientPayloadError,
    ):
        return "transient"
    return "permanent"


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date.

    ``now`` must be timezone-aware.  A date in the past means 0; a header that is
    absent or unreadable means None (no instruction).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        # RFC 9110 HTTP-dates are always GMT.
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; ``max_retries`` repeats after the first attempt."""

    base: float = 1.0
    factor: float = 2.0
    max_delay: float = 300.0
    jitter: float = 0.5
    max_retries: int = 4

    def __post_init__(self) -> None:
        if not (math.isfinite(self.base) and self.base > 0):
            raise ValueError(
                f"RetryPolicy.base must be a positive number of seconds, not {self.base!r}."
            )
        if not (math.isfinite(self.factor) and self.factor >= 1):
            raise ValueError(f"RetryPolicy.factor must be at least 1, not {self.factor!r}.")
        if not (math.isfinite(self.max_delay) and self.max_delay >= self.base):
            raise ValueError(
                f"RetryPolicy.max_delay must be at least base ({self.base!r} s), "
                f"not {self.max_delay!r}."
            )
        if not (0 <= self.jitter <= 1):
            raise ValueError(f"RetryPolicy.jitter must be between 0 and 1, not {self.jitter!r}.")
        if (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or self.max_retries < 0
        ):
            raise ValueError(
                "RetryPolicy.max_retries must be a whole number of at least 0, "
                f"not {self.max_retries!r}."
            )

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt ``attempt`` before jitter: capped exponential."""
        _check_attempt(attempt)
        try:
            raw = self.base * self.factor ** (attempt - 1)
        except OverflowError:
            return self.max_delay
        return min(self.max_delay, raw)

    def delay(self, attempt: int, error: BaseException | None, rng: random.Random) -> float:
        """Seconds to wait after failed attempt ``attempt``; never less than a 429's Retry-After."""
        b = self.backoff(attempt)
        wait = b * (1.0 - self.jitter * rng.random())
        if isinstance(error, RateLimited) and error.retry_after is not None:
            wait = max(wait, error.retry_after)
        return wait

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """Whether to try again after failed attempt ``attempt`` that raised ``error``.

        Only transient errors, at most ``max_retries`` times.  A 429 asking for a longer
        wait than ``max_delay`` is not retried here: the caller hands it to the durable
        queue, which can wait that long without holding a call open.
        """
        _check_attempt(attempt)
        if classify(error) != "transient" or attempt > self.max_retries:
            return False
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return error.retry_after <= self.max_delay
        return True

    def next_attempt_at(
        self, now: datetime, attempt: int, error: BaseException | None, rng: random.Random
    ) -> datetime:
        """``now`` plus :meth:`delay`: when a durable queue should try again."""
        return now + timedelta(seconds=self.delay(attempt, error, rng))


def _check_attempt(attempt: int) -> None:
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"attempt counts attempts made so far and starts at 1, not {attempt!r}.")
