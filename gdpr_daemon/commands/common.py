"""What every command shares: what its runtime opens, settings and logging, who is acting, bounded text."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import signal
import sys
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gdpr_daemon.config import Settings, load_settings

if TYPE_CHECKING:
    from gdpr_daemon.runtime import Runtime

INSUFFICIENT_PRIVILEGE = "42501"


class UsageError(Exception):
    """Bad arguments that argparse cannot see; exit 2."""


@dataclass(frozen=True)
class Needs:
    """What ``cli.main`` opens for a command before it runs it (see :mod:`gdpr_daemon.runtime`).

    A command given ``needs`` is called as ``func(args, runtime)``; one without sets itself
    up (``check``, ``demo``, ``simulate``) and is called as ``func(args)``.
    """

    api: bool = False  # the API client, opened before the command runs
    quiet: bool = True  # log warnings only: the command's own output is what the user reads
    service: bool = False  # the daemon's pool (database_pool_size) and application_name
    migrate_login: bool = False  # connect as the schema owner (database_migrate_url)
    pool_size: int = 1


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "log_format", None):
        overrides["log_format"] = args.log_format
    return load_settings(args.config, **overrides)


def setup_logging(settings: Settings, *, quiet: bool = False) -> None:
    from gdpr_daemon import logs

    logs.configure(settings.log_format, "warning" if quiet else settings.log_level)


#: Bounds of the free text a command takes (the database bounds what it stores, too).
MAX_REASON = 1000
MAX_COMMENT = 4000  # as the comment column
MAX_NAME = 255  # as requested_by and the other names


def free_text(option: str, limit: int, *, one_line: bool = False) -> Callable[[str], str]:
    """An argparse type: text of at most ``limit`` characters, no NUL (nor line breaks or other
    control characters with ``one_line``); else one sentence and exit 2."""

    def check(text: str) -> str:
        if "\x00" in text:
            raise argparse.ArgumentTypeError(f"{option} contains a NUL character, which cannot be stored")
        if one_line and any(unicodedata.category(ch) == "Cc" for ch in text):
            raise argparse.ArgumentTypeError(f"{option} contains a control character; give one line of text")
        if len(text) > limit:
            raise argparse.ArgumentTypeError(
                f"{option} is longer than {limit} characters ({len(text)}); shorten it"
            )
        return text

    return check


REASON = free_text("--reason", MAX_REASON)
COMMENT = free_text("--comment", MAX_COMMENT)
ACTOR = free_text("--actor", MAX_NAME, one_line=True)


def actor(args: argparse.Namespace) -> str:
    return getattr(args, "actor", None) or getpass.getuser()


async def sync_intake_settings(rt: Runtime) -> None:
    """Write four eyes and holidays from this command's configuration, in the safe direction only.

    A DPO role without write access to gdpr_daemon_settings is fine: the daemon writes them.
    """
    from gdpr_daemon.db.intake_settings import write_intake_settings

    settings = rt.settings
    try:
        await write_intake_settings(
            rt.engine,
            require_approval=settings.intake_require_approval,
            holidays=settings.intake_holidays,
            authoritative=False,
        )
    except Exception as exc:
        cause: BaseException | None = exc
        while cause is not None and getattr(cause, "sqlstate", None) is None:
            cause = getattr(cause, "orig", None) or cause.__cause__
        if cause is None or cause.sqlstate != INSUFFICIENT_PRIVILEGE:  # type: ignore[attr-defined]
            raise


class Progress:
    """A line on stderr now and then: redrawn every 2 s on a terminal, every 30 s in a log."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.tty = sys.stderr.isatty()
        self.every = 2.0 if self.tty else 30.0
        self.next = time.monotonic() + self.every
        self.shown = False

    def __call__(self, text: str) -> None:
        now = time.monotonic()
        if now < self.next:
            return
        self.next = now + self.every
        self.shown = True
        sys.stderr.write(f"\r{self.what}: {text}   " if self.tty else f"{self.what}: {text}\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.shown and self.tty:
            sys.stderr.write("\n")


def stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
