"""Unit tests of the fault configuration and the pure fault decisions (no server)."""

from __future__ import annotations

import random

import pytest

from gdpr_daemon.simulator.faults import (
    NO_FAULT,
    FaultConfig,
    FaultCounters,
    decide,
    session_expired,
)


def run(config: FaultConfig, calls: int, seed: int = 3, **where: object) -> list:
    rng = random.Random(seed)
    counters = FaultCounters.start(config)
    decisions = []
    for _ in range(calls):
        decision, counters = decide(config, rng, counters, **where)  # type: ignore[arg-type]
        decisions.append(decision)
    return decisions


def test_default_config_injects_nothing() -> None:
    """A default FaultConfig lets every call through untouched."""
    assert all(d is NO_FAULT for d in run(FaultConfig(), 200))


def test_burst_429_answers_exactly_n_calls_then_stops() -> None:
    """burst_429=N: the next N calls get 429 with the configured Retry-After, then none."""
    decisions = run(FaultConfig(burst_429=3, retry_after_s=0), 6)
    assert [d.status for d in decisions] == [429, 429, 429, None, None, None]
    assert decisions[0].retry_after_s == 0


def test_rate_429_one_makes_every_call_429() -> None:
    """rate_429=1.0 answers every call 429 with Retry-After."""
    decisions = run(FaultConfig(rate_429=1.0, retry_after_s=2), 20)
    assert {(d.status, d.retry_after_s) for d in decisions} == {(429, 2)}


def test_rate_5xx_gives_500_502_503_as_html_and_json() -> None:
    """rate_5xx=1.0: statuses 500, 502 and 503 occur, with both HTML and JSON bodies."""
    decisions = run(FaultConfig(rate_5xx=1.0), 300)
    assert {d.status for d in decisions} == {500, 502, 503}
    assert {d.html for d in decisions} == {True, False}


def test_rate_5xx_fraction_is_roughly_the_rate() -> None:
    """rate_5xx=0.2 fails about a fifth of the calls (seeded, so exact and stable)."""
    failed = sum(d.status is not None for d in run(FaultConfig(rate_5xx=0.2), 2000))
    assert 300 < failed < 500


def test_same_seed_same_decisions() -> None:
    """Two runs with the same generator seed make the same decisions."""
    config = FaultConfig(rate_5xx=0.3, rate_429=0.1, malformed_rate=0.2, malformed_mode="any")
    assert run(config, 100, seed=11) == run(config, 100, seed=11)
    assert run(config, 100, seed=11) != run(config, 100, seed=12)


def test_failing_and_rejecting_services_touch_only_their_gdpr_calls() -> None:
    """failing_services answer 500 and rejecting_services 400, for GDPR calls only."""
    config = FaultConfig(failing_services=frozenset({1002}), rejecting_services={1003})
    assert run(config, 1, service_id=1002, gdpr=True)[0].status == 500
    rejected = run(config, 1, service_id=1003, gdpr=True)[0]
    assert rejected.status == 400 and "1003" in rejected.message
    assert run(config, 1, service_id=1002, gdpr=False)[0] is NO_FAULT
    assert run(config, 1, service_id=1001, gdpr=True)[0] is NO_FAULT


def test_malformed_modes() -> None:
    """malformed_rate=1 spoils every answer in the given mode; 'any' uses all three."""
    fixed = run(FaultConfig(malformed_rate=1.0, malformed_mode="html_200"), 10)
    assert {d.malformed for d in fixed} == {"html_200"}
    mixed = run(FaultConfig(malformed_rate=1.0, malformed_mode="any"), 200)
    assert {d.malformed for d in mixed} == {"truncated_json", "html_200", "missing_id"}
    assert all(d.status is None for d in mixed)


def test_latency_and_jitter_give_a_delay_in_range() -> None:
    """latency_ms plus up to latency_jitter_ms becomes the delay before handling."""
    delays = [d.delay_s for d in run(FaultConfig(latency_ms=100, latency_jitter_ms=50), 100)]
    assert all(0.1 <= d <= 0.15 for d in delays)
    assert len(set(delays)) > 1


def test_hang_applies_with_its_rate() -> None:
    """hang_ms holds answers back; hang_rate picks which calls."""
    assert {d.hang_s for d in run(FaultConfig(hang_ms=250), 10)} == {0.25}
    partial = {d.hang_s for d in run(FaultConfig(hang_ms=250, hang_rate=0.5), 100)}
    assert partial == {0.0, 0.25}


def test_session_expiry_after_calls() -> None:
    """A session dies once it has made session_expiry_after_calls calls; 0 means never."""
    config = FaultConfig(session_expiry_after_calls=2)
    assert [session_expired(config, n) for n in range(4)] == [False, False, True, True]
    assert not session_expired(FaultConfig(), 10_000)


@pytest.mark.parametrize(
    "changes",
    [
        {"rate_5xx": 1.5},
        {"rate_429": -0.1},
        {"latency_ms": -1},
        {"burst_429": 1.5},
        {"malformed_mode": "garbage"},
        {"no_such_field": 1},
        {"failing_services": "1001"},
    ],
)
def test_invalid_configs_are_refused(changes: dict) -> None:
    """Out-of-range rates, negative counts, unknown modes or keys raise ValueError."""
    with pytest.raises(ValueError):
        FaultConfig.from_json(changes)


def test_json_round_trip_and_update() -> None:
    """to_json/from_json round-trip; updated() changes only the fields given."""
    config = FaultConfig(rate_5xx=0.5, failing_services=[1002, 1001], seed=4)
    data = config.to_json()
    assert data["failing_services"] == [1001, 1002]
    assert FaultConfig.from_json(data) == config
    changed = config.updated({"burst_429": 2})
    assert changed.burst_429 == 2 and changed.rate_5xx == 0.5 and changed.seed == 4
