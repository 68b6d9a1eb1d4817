"""Alembic environment.

Run in-process by ``gdpr_daemon.db.migrate`` (which hands over a connection), or by the
``alembic`` command with ``alembic.ini`` at the project root (which builds an engine from
``GDPR_DAEMON_DATABASE_URL`` or ``sqlalchemy.url``).
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from gdpr_daemon.db.engine import make_engine
from gdpr_daemon.db.tables import metadata

config = context.config
target_metadata = metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, transaction_per_migration=False)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = make_engine(url, pool_size=1)
    async with engine.connect() as conn:
        await conn.run_sync(_run)
        await conn.commit()
    await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        url = os.environ.get("GDPR_DAEMON_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
        asyncio.run(_run_async(url))
