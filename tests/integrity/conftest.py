"""Fixtures of the integrity tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog


@pytest.fixture
def capture_logs() -> Iterator[list[dict[str, Any]]]:
    """Log events as dicts, for asserting on data rather than text."""
    with structlog.testing.capture_logs() as logs:
        yield logs


@pytest.fixture
def keep_suite_logging() -> Iterator[None]:
    """For commands run in this process: they configure logging onto the test's captured
    stderr, which closes with the test; put the suite's configuration back afterwards."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)
