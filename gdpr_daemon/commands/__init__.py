"""The commands, one module per noun; each has ``add_parsers(sub)`` and its handlers.

A handler is ``func(args, runtime)`` when its parser sets ``needs`` (``cli.main`` opens
the runtime for it, see :class:`gdpr_daemon.commands.common.Needs`), else ``func(args)``.
"""

from __future__ import annotations

from gdpr_daemon.commands import (
    audit,
    check,
    demo,
    events,
    imports,
    migrate,
    purge,
    report,
    requests,
    run,
    services,
    simulate,
    status,
)

#: In the order `gdpr-daemon --help` lists them.
MODULES = (migrate, run, requests, status, events, report, audit, purge, services, imports, check, demo, simulate)
