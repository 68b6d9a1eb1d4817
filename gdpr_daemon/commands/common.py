"""Helpers every command uses: settings from the arguments, logging, who is acting."""

from __future__ import annotations

import argparse
import getpass
import unicodedata
from collections.abc import Callable
from typing import Any

from gdpr_daemon.config import Settings, load_settings


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
