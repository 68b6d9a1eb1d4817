"""``gdpr-daemon check``: each prerequisite as OK or a one-line reason."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable

from gdpr_daemon.config import ConfigError, Settings, load_settings
from gdpr_daemon.safetext import escape_controls, mask_url


async def run_checks(config_path: str | None, *, out: Callable[[str], None] = print) -> int:
    failures = 0

    def report(name: str, ok: bool, detail: str) -> None:
        nonlocal failures
        failures += 0 if ok else 1
        # Details quote the API (service names, its messages) and the database URL: shown
        # with control characters escaped and any password masked.
        out(f"{'OK  ' if ok else 'FAIL'}  {name:<16} {escape_controls(mask_url(detail))}")

    try:
        settings: Settings = load_settings(config_path)
        settings.require_database()
        settings.require_api()
        report("config", True, "settings complete")
    except ConfigError as exc:
        report("config", False, str(exc))
        return 1

    from gdpr_daemon.db import migrate
    from gdpr_daemon.db.engine import safe_url
    from gdpr_daemon.errors import describe
    from gdpr_daemon.runtime import client_config, open_runtime

    async def step(name: str, fn: Callable[[], Awaitable[str]]) -> bool:
        try:
            report(name, True, await fn())
            return True
        except Exception as exc:
            report(name, False, describe(exc))
            return False

    # Its own runtime, not cli.main's: a configuration error is a FAIL line here, not exit 2.
    async with open_runtime(settings) as rt:

        async def database() -> str:
            async with rt.engine.connect() as conn:
                version = (await conn.exec_driver_sql("SHOW server_version")).scalar_one()
            return f"{safe_url(settings.database_url or '')} (Postgres {version})"

        async def schema() -> str:
            current, head = await migrate.current_revision(rt.engine), migrate.head_revision()
            if current != head:
                raise RuntimeError(f"schema at revision {current or 'none'}, needs {head}: run `gdpr-daemon migrate`")
            return f"revision {current} (newest)"

        if await step("database", database):
            await step("schema", schema)
        try:
            config = client_config(settings)
            client = await rt.open_api()
        except ConfigError as exc:
            report("api login", False, str(exc))
            return 1

        async def login() -> str:
            await client.authenticate()
            return f"{config.base_url} as {settings.ownbackup_email or 'API token'}"

        async def services() -> str:
            found = await client.list_services()
            if not found:
                raise RuntimeError("the account has no services: requests could only be rejected")
            return f"{len(found)} visible: " + ", ".join(f"{s.id} {s.displayed_name}" for s in found[:5]) + (
                ", ..." if len(found) > 5 else ""
            )

        if await step("api login", login):
            await step("services", services)
    return 1 if failures else 0


async def cmd_check(args: argparse.Namespace) -> int:
    return await run_checks(args.config)


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("check", help="check config, database, schema and API login",
                       description="Print each check as OK or a one-line reason; exit 1 if any fails.")  # fmt: skip
    s.set_defaults(func=cmd_check)
