"""Fixtures of the attack tests: a hostile API server per test, its secrets fed to the leak scan."""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from gdpr_daemon import logs
from tests.helpers import LOG_DIR, SECRETS_SEEN, SIM_EMAIL, SIM_PASSWORD
from tests.security.hostile import HostileApi


@pytest.fixture
async def hostile() -> AsyncIterator[tuple[HostileApi, str]]:
    """A hostile OwnBackup API on loopback, (server, base URL); its session ids join the leak scan."""
    api = HostileApi(email=SIM_EMAIL, password=SIM_PASSWORD)
    async with api.serve() as url:
        yield api, url
    SECRETS_SEEN.update(api.sessions)


class RenderedLog:
    """What the production logging set-up writes (JSON lines, after redaction), kept in memory."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.startswith("{")]


@pytest.fixture
def rendered_log() -> Iterator[RenderedLog]:
    """The process's log lines as production renders them; saved beside the suite's logs for the leak scan.

    (The suite's own set-up is put back after the test by conftest's autouse fixture.)
    """
    log = RenderedLog()
    logs.configure("json", "debug", stream=log.stream)
    yield log
    (LOG_DIR / f"security-{secrets.token_hex(4)}.log").write_text(log.text, encoding="utf-8")
