"""Helpers of the DPO tests: run the command line, write CSV files."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import os
import sys
from pathlib import Path
from typing import Any

from gdpr_daemon import logs
from gdpr_daemon.cli import main
from tests.helpers import LOG_DIR, run_cli, subprocess_env

HEADER = "request_type,service_id,table_name,record_id,field,value,comment,external_ref,received_at,requested_by"


cli = run_cli  # `gdpr-daemon ARGS` in a subprocess: (exit status, stdout, stderr)


class InProcessCli:
    """Runs `gdpr-daemon ARGS` through ``cli.main`` in a worker thread, as a subprocess would but
    without its start-up time; the environment is the subprocess's, and the suite's logging is
    restored afterwards."""

    def __init__(self, db_url: str, sim_url: str, log_stream: Any) -> None:
        self.db_url, self.sim_url, self.log_stream = db_url, sim_url, log_stream

    async def __call__(self, *args: str, stdin: str = "", **env: str) -> tuple[int, str, str]:
        wanted = {k: v for k, v in subprocess_env(self.db_url, self.sim_url, **env).items() if k.startswith("GDPR_DAEMON_")}
        saved = {k: v for k, v in os.environ.items() if k.startswith("GDPR_DAEMON_")}
        for k in saved:
            del os.environ[k]
        os.environ.update(wanted)
        try:
            code, out, err = await asyncio.to_thread(self._call, list(args), stdin)
            # What a subprocess would have logged joins the leak scan at the end of the run.
            with (LOG_DIR / "in-process-cli.log").open("a", encoding="utf-8") as f:
                f.write(err)
            return code, out, err
        finally:
            for k in wanted:
                os.environ.pop(k, None)
            os.environ.update(saved)
            if self.log_stream is not None:
                logs.configure("json", "debug", stream=self.log_stream)

    @staticmethod
    def _call(argv: list[str], stdin: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        old_stdin = sys.stdin
        sys.stdin = io.StringIO(stdin)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(argv)
                except SystemExit as exc:  # argparse: --help, usage errors
                    code = exc.code if isinstance(exc.code, int) else 2
        finally:
            sys.stdin = old_stdin
        return code, out.getvalue(), err.getvalue()


def csv_bytes(rows: list[list[str]], header: str = HEADER) -> bytes:
    buf = io.StringIO()
    buf.write(header + "\n")
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode("utf-8")


def write_csv(path: Path, rows: list[list[str]], header: str = HEADER) -> Path:
    path.write_bytes(csv_bytes(rows, header))
    return path


def forget(sid: str, record: str, ref: str = "", *, table: str = "Contact") -> list[str]:
    return ["forget", sid, table, record, "", "", "", ref, "", ""]


def rectify(sid: str, record: str, field: str, value: str, ref: str = "") -> list[str]:
    return ["rectify", sid, "Contact", record, field, value, "", ref, "", ""]
