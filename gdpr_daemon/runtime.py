"""One runtime for every command: the database engines and the API client, opened once.

``cli.main`` opens it for the command it runs and hands it over; the long-running service
(:class:`gdpr_daemon.daemon.Daemon`) takes the same object.  Nothing else builds an engine
or an API client::

    async with open_runtime(settings, api=True) as rt:
        await rt.check_schema()
        services = await rt.client.list_services()
        async with rt.engine.begin() as conn:
            ...

The engine is created on first use (a command refused before it needs the database never
connects); the API client is opened at start with ``api=True``, or later with
:meth:`Runtime.open_api` by a command that needs it only sometimes.  Leaving the block
logs out of the API and disposes of the engines, in that order.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncEngine

from gdpr_daemon.config import ConfigError, Settings
from gdpr_daemon.db import migrate
from gdpr_daemon.db.engine import APPLICATION_NAME, make_engine
from gdpr_daemon.ownbackup import ClientConfig, Endpoints, OAuthAuth, OwnBackupClient, SessionAuth


class StartupError(Exception):
    """A command or the daemon cannot start; the message says why and what to do."""


def client_config(settings: Settings) -> ClientConfig:
    """The API client's configuration from the settings; ConfigError naming what is missing or wrong."""
    settings.require_api()
    base = settings.api_base_url
    assert base is not None
    if settings.ownbackup_auth == "session":
        assert settings.ownbackup_email and settings.ownbackup_password
        auth: SessionAuth | OAuthAuth = SessionAuth(
            settings.ownbackup_email, settings.ownbackup_password.get_secret_value()
        )
    else:
        assert settings.ownbackup_api_token
        auth = OAuthAuth(
            token_url=settings.ownbackup_token_url,
            client_id=settings.ownbackup_client_id,
            api_token=settings.ownbackup_api_token.get_secret_value(),
        )
    try:
        endpoints = Endpoints().with_overrides(settings.ownbackup_endpoints)
        return ClientConfig(
            base_url=base,
            auth=auth,
            timeout=settings.ownbackup_timeout_seconds,
            connect_timeout=settings.ownbackup_connect_timeout_seconds,
            endpoints=endpoints,
            max_connections=max(settings.queue_concurrency * 2, 10),
            allow_insecure_http=settings.ownbackup_allow_insecure_http,
            max_response_bytes=settings.ownbackup_max_response_bytes,
        )
    except ValueError as exc:
        raise ConfigError(f"ownbackup settings: {exc}") from None


async def check_schema(engine: AsyncEngine) -> None:
    """StartupError unless the database's schema is this version's newest migration."""
    current = await migrate.current_revision(engine)
    head = migrate.head_revision()
    if current != head:
        raise StartupError(
            f"the database schema is at revision {current or 'none'}, this version needs {head}: "
            "run `gdpr-daemon migrate` first"
        )


class Runtime:
    """What a command works with: settings, engines and API client, closed together."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: AsyncEngine | None = None,
        pool_size: int = 1,
        migrate_login: bool = False,
        application_name: str | None = None,
    ) -> None:
        self.settings = settings
        self._engine = engine
        self._own_engine = engine is None
        self._pool_size = pool_size
        self._migrate_login = migrate_login
        self._application_name = application_name or APPLICATION_NAME
        self._direct: AsyncEngine | None = None
        self._client: OwnBackupClient | None = None

    @property
    def database_url(self) -> str:
        """The URL this runtime's engine connects to (the owner's for ``migrate``)."""
        s = self.settings
        return s.migrate_database() if self._migrate_login else s.require_database()

    @property
    def engine(self) -> AsyncEngine:
        """The pooled engine, created on first use (ConfigError when no database is configured)."""
        if self._engine is None:
            self._engine = make_engine(
                self.database_url, pool_size=self._pool_size, application_name=self._application_name
            )
        return self._engine

    @property
    def direct_engine(self) -> AsyncEngine:
        """A direct connection for session-level state (LISTEN, advisory locks), which a
        transaction-mode pooler breaks: ``database_listen_url`` when it differs, else :attr:`engine`."""
        listen = self.settings.database_listen_url
        if not listen or listen == self.settings.database_url:
            return self.engine
        if self._direct is None:
            self._direct = make_engine(listen, pool_size=1, application_name=self._application_name)
        return self._direct

    @property
    def client(self) -> OwnBackupClient:
        """The open API client (``open_runtime(..., api=True)`` or :meth:`open_api` first)."""
        if self._client is None:
            raise RuntimeError("the API client is not open: open_runtime(..., api=True) or await rt.open_api()")
        return self._client

    async def open_api(self) -> OwnBackupClient:
        """Open the API client if it is not open yet (ConfigError when the API settings are incomplete)."""
        if self._client is None:
            client = OwnBackupClient(client_config(self.settings))
            await client.open()
            self._client = client
        return self._client

    async def check_schema(self) -> None:
        await check_schema(self.engine)

    async def close(self) -> None:
        """Log out of the API, then dispose of the engines this runtime created."""
        try:
            if self._client is not None:
                client, self._client = self._client, None
                await client.close()
        finally:
            if self._direct is not None:
                await self._direct.dispose()
            if self._own_engine and self._engine is not None:
                await self._engine.dispose()


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    api: bool = False,
    engine: AsyncEngine | None = None,
    pool_size: int = 1,
    migrate_login: bool = False,
    application_name: str | None = None,
) -> AsyncIterator[Runtime]:
    """The runtime of one command: ``api`` opens the API client at once; ``engine`` lends
    an engine (the caller disposes of it); ``migrate_login`` connects as the schema owner
    (``database_migrate_url``)."""
    rt = Runtime(settings, engine=engine, pool_size=pool_size, migrate_login=migrate_login,
                 application_name=application_name)  # fmt: skip
    try:
        if api:
            await rt.open_api()
        yield rt
    finally:
        await rt.close()
