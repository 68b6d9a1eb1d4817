"""Fixtures of the DPO tests."""

from __future__ import annotations

import pytest

from tests.dpo.support import InProcessCli


@pytest.fixture
def run(pytestconfig: pytest.Config, db_url: str, sim_url: str) -> InProcessCli:
    """`await run("requests", "list")`: the command line in this process (fast); (exit status, stdout, stderr)."""
    return InProcessCli(db_url, sim_url, getattr(pytestconfig, "_gdpr_log_stream", None))
