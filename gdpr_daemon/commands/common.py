"""Helpers every command uses: settings from the arguments, logging, who is acting."""

from __future__ import annotations

import argparse
import getpass
from typing import Any

from gdpr_daemon.config import Settings, load_settings


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "log_format", None):
        overrides["log_format"] = args.log_format
    return load_settings(args.config, **overrides)


def setup_logging(settings: Settings, *, quiet: bool = False) -> None:
    from gdpr_daemon import logging as glog

    glog.configure(settings.log_format, "warning" if quiet else settings.log_level)


def actor(args: argparse.Namespace) -> str:
    return getattr(args, "actor", None) or getpass.getuser()
