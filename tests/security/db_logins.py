"""Real database logins of the roles of config/sql/roles.sql, for the database attacks.

An attacker has a login of their own, not a superuser session with ``SET ROLE``: the
database tells them apart (``session_user``), so every attack here connects as a LOGIN
role made for the test, a member of one of the three group roles, and is dropped again
afterwards.  Roles are cluster-wide, so each name is random.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

ROLES_SQL = Path(__file__).resolve().parents[2] / "config" / "sql" / "roles.sql"
GROUPS = ("gdpr_intake", "gdpr_daemon", "gdpr_auditor")

Login = Callable[[str], Awaitable[str]]  # group role -> URL of a new login in it


def url_as(db_url: str, user: str) -> str:
    return make_url(db_url).set(username=user, password=None).render_as_string(hide_password=False)


async def apply_roles(pg: asyncpg.Connection) -> None:
    """roles.sql on this test's database, twice (it must be idempotent)."""
    script = ROLES_SQL.read_text(encoding="utf-8")
    await pg.execute(script)
    await pg.execute(script)


@pytest.fixture
async def roles(pg: asyncpg.Connection) -> None:
    """The test's database with roles.sql applied."""
    await apply_roles(pg)


@pytest.fixture
async def login(roles: None, db_url: str, pg_admin_url: str) -> AsyncIterator[Login]:
    """``await login("gdpr_intake")``: the URL of a fresh LOGIN role in that group, dropped after the test."""
    made: list[str] = []

    async def make(group: str) -> str:
        assert group in GROUPS, group
        name = f"gdpr_t_{group.removeprefix('gdpr_')}_{secrets.token_hex(4)}"
        admin = await asyncpg.connect(pg_admin_url)
        try:
            await admin.execute(f'CREATE ROLE "{name}" LOGIN IN ROLE {group}')
        finally:
            await admin.close()
        made.append(name)
        return url_as(db_url, name)

    yield make
    if made:
        admin = await asyncpg.connect(pg_admin_url)
        try:
            for name in made:
                await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", name)
                for _ in range(50):  # bounded: terminated backends leave within moments
                    with contextlib.suppress(asyncpg.DependentObjectsStillExistError, asyncpg.ObjectInUseError):
                        await admin.execute(f'DROP ROLE IF EXISTS "{name}"')
                        break
                    await asyncio.sleep(0.1)
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


def user_of(url: str) -> str:
    return str(make_url(url).username)
