"""Retry decisions: classification, Retry-After parsing, backoff, jitter and limits."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from gdpr_daemon.ownbackup import (
    AuthenticationError,
    BadAnswer,
    ClientError,
    ConnectionFailed,
    NotFound,
    OwnBackupError,
    PermanentError,
    RateLimited,
    RequestTimeout,
    RetryPolicy,
    ServerError,
    TransientError,
    classify,
    parse_retry_after,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

TRANSIENT = [
    ConnectionFailed("x"),
    RequestTimeout("x"),
    RequestTimeout("x", status=408),
    RateLimited("x"),
    RateLimited("x", retry_after=3),
    ServerError("x", status=503),
    BadAnswer("x"),
    TransientError("x"),
    TimeoutError(),
    TimeoutError(),
    ConnectionResetError(),
    ConnectionRefusedError(),
    aiohttp.ServerDisconnectedError(),
    aiohttp.ClientPayloadError("cut"),
]
PERMANENT = [
    ClientError("x", status=400),
    NotFound("x", status=404),
    AuthenticationError("x", status=401),
    PermanentError("x"),
    OwnBackupError("x"),
    ValueError("bug"),
    KeyError("bug"),
    RuntimeError("bug"),
]


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: type(e).__name__)
def test_classify_transient(error: BaseException) -> None:
    """Network failures, timeouts, 408, 429, 5xx and unreadable answers are transient."""
    assert classify(error) == "transient"


@pytest.mark.parametrize("error", PERMANENT, ids=lambda e: type(e).__name__)
def test_classify_permanent(error: BaseException) -> None:
    """Other 4xx, refused credentials and unknown exceptions (bugs) are permanent."""
    assert classify(error) == "permanent"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("0", 0.0),
        ("7", 7.0),
        (" 120 ", 120.0),
        ("1.5", 1.5),
        ("Wed, 01 May 2024 12:00:30 GMT", 30.0),
        ("Wed, 01 May 2024 11:00:00 GMT", 0.0),  # a date in the past: go now
        ("Wednesday, 01-May-24 12:01:00 GMT", 60.0),  # obsolete RFC 850 form
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    """Retry-After is read as delta-seconds or an HTTP-date; junk means no instruction."""
    assert parse_retry_after(header, NOW) == expected


def test_defaults() -> None:
    """The default policy is 1 s base, doubling, 300 s cap, equal jitter, 4 retries."""
    p = RetryPolicy()
    assert (p.base, p.factor, p.max_delay, p.jitter, p.max_retries) == (1.0, 2.0, 300.0, 0.5, 4)


@pytest.mark.parametrize(
    ("attempt", "expected"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 256.0), (10, 300.0)]
)
def test_backoff_doubles_up_to_the_cap(attempt: int, expected: float) -> None:
    """The backoff before jitter is base * factor ** (attempt - 1), capped at max_delay."""
    assert RetryPolicy().backoff(attempt) == expected


def test_backoff_huge_attempt_is_capped_not_overflowing() -> None:
    """An absurd attempt number gives max_delay instead of an OverflowError."""
    assert RetryPolicy().backoff(100_000) == 300.0


class _Fixed(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize("draw", [0.0, 0.25, 0.5, 0.999999])
@pytest.mark.parametrize("jitter", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 12])
def test_delay_spreads_backoff_by_jitter(draw: float, jitter: float, attempt: int) -> None:
    """The delay is backoff * (1 - jitter * u): within [backoff * (1 - jitter), backoff]."""
    p = RetryPolicy(jitter=jitter)
    b = p.backoff(attempt)
    d = p.delay(attempt, ServerError("x"), _Fixed(draw))
    assert d == pytest.approx(b * (1 - jitter * draw))
    assert b * (1 - jitter) - 1e-9 <= d <= b


def test_delay_without_jitter_is_deterministic() -> None:
    """With jitter 0 the delay is exactly the backoff, whatever the random source."""
    p = RetryPolicy(jitter=0)
    assert [p.delay(n, None, random.Random(n)) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]


def test_delay_is_reproducible_with_a_seeded_rng() -> None:
    """The same seed gives the same delays: decisions depend on their inputs only."""
    p = RetryPolicy()
    a = [p.delay(n, None, random.Random(42)) for n in range(1, 6)]
    b = [p.delay(n, None, random.Random(42)) for n in range(1, 6)]
    assert a == b


@pytest.mark.parametrize("retry_after", [0.0, 0.4, 1.0, 5.0, 30.0, 299.0])
@pytest.mark.parametrize("attempt", [1, 2, 4])
@pytest.mark.parametrize("draw", [0.0, 0.999])
def test_delay_never_less_than_retry_after(retry_after: float, attempt: int, draw: float) -> None:
    """A 429's Retry-After is a floor for the delay; the backoff still applies above it."""
    p = RetryPolicy()
    error = RateLimited("x", retry_after=retry_after)
    d = p.delay(attempt, error, _Fixed(draw))
    assert d >= retry_after
    assert d == pytest.approx(max(retry_after, p.backoff(attempt) * (1 - 0.5 * draw)))


def test_delay_rate_limited_without_retry_after_uses_backoff() -> None:
    """A 429 without Retry-After waits the ordinary backoff."""
    p = RetryPolicy(jitter=0)
    assert p.delay(3, RateLimited("x", retry_after=None), random.Random(1)) == 4.0


@pytest.mark.parametrize("attempt", [1, 2, 3, 4])
@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: type(e).__name__)
def test_should_retry_transient_within_limit(error: BaseException, attempt: int) -> None:
    """Transient errors are retried while attempt <= max_retries."""
    assert RetryPolicy(max_retries=4).should_retry(error, attempt) is True


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: type(e).__name__)
def test_should_retry_stops_after_max_retries(error: BaseException) -> None:
    """After max_retries retries (1 + max_retries attempts), no more."""
    assert RetryPolicy(max_retries=4).should_retry(error, 5) is False


@pytest.mark.parametrize("attempt", [1, 2, 10])
@pytest.mark.parametrize("error", PERMANENT, ids=lambda e: type(e).__name__)
def test_should_retry_never_permanent(error: BaseException, attempt: int) -> None:
    """Permanent errors are never retried, whatever the attempt."""
    assert RetryPolicy().should_retry(error, attempt) is False


def test_should_retry_zero_retries() -> None:
    """max_retries=0 means one attempt and no retry."""
    assert RetryPolicy(max_retries=0).should_retry(ServerError("x"), 1) is False


def test_should_retry_refuses_retry_after_beyond_max_delay() -> None:
    """A 429 asking for longer than max_delay goes to the caller instead of sleeping here."""
    p = RetryPolicy(max_delay=60)
    assert p.should_retry(RateLimited("x", retry_after=60), 1) is True
    assert p.should_retry(RateLimited("x", retry_after=61), 1) is False


@pytest.mark.parametrize("attempt", [0, -1, 1.0, True, "1", None])
def test_attempt_must_be_positive_int(attempt: object) -> None:
    """Attempts count from 1; anything else is a caller bug (ValueError)."""
    with pytest.raises(ValueError, match="starts at 1"):
        RetryPolicy().should_retry(ServerError("x"), attempt)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="starts at 1"):
        RetryPolicy().delay(attempt, None, random.Random(1))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base": 0},
        {"base": -1},
        {"base": float("nan")},
        {"factor": 0.5},
        {"max_delay": 0.5},
        {"max_delay": float("inf")},
        {"jitter": -0.1},
        {"jitter": 1.5},
        {"max_retries": -1},
        {"max_retries": 1.5},
        {"max_retries": True},
    ],
)
def test_policy_refuses_nonsense(kwargs: dict[str, object]) -> None:
    """A policy that cannot work is refused when it is made, with a sentence."""
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_policy_is_frozen() -> None:
    """The policy is a frozen value object."""
    with pytest.raises(AttributeError):
        RetryPolicy().base = 2  # type: ignore[misc]


def test_next_attempt_at_adds_the_delay() -> None:
    """next_attempt_at is now plus delay, for the durable queue."""
    p = RetryPolicy(jitter=0)
    assert p.next_attempt_at(NOW, 2, None, random.Random(0)) == NOW + timedelta(seconds=2)
