"""Fixtures of the integrity tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import structlog


@pytest.fixture
def capture_logs() -> Iterator[list[dict[str, Any]]]:
    """Log events as dicts, for asserting on data rather than text."""
    with structlog.testing.capture_logs() as logs:
        yield logs
