"""``python -m gdpr_daemon`` and the ``gdpr-daemon`` console script.

Kept tiny on purpose: it catches SIGTERM before the command line's imports, which take
most of a start, so that a `gdpr-daemon run` stopped while still starting ends with exit 0
(nothing is claimed or written yet) instead of dying by the signal.  ``cli.main`` hands
SIGTERM back to its default for every other command; `run` replaces it with its drain.
"""

import signal


def _stop_while_starting(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def main() -> int:
    signal.signal(signal.SIGTERM, _stop_while_starting)
    from gdpr_daemon.cli import main as run_command

    return run_command()


if __name__ == "__main__":
    raise SystemExit(main())
