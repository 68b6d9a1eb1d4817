"""Run a SQL script of several statements through a driver that prepares each one."""

from __future__ import annotations

from sqlalchemy.engine import Connection


def split_statements(script: str) -> list[str]:
    """Split on ``;`` at line ends, keeping dollar-quoted function bodies whole."""
    statements: list[str] = []
    buf: list[str] = []
    in_dollar = False
    for line in script.splitlines():
        buf.append(line)
        if line.count("$$") % 2:
            in_dollar = not in_dollar
        if not in_dollar and line.rstrip().endswith(";"):
            stmt = "\n".join(buf).strip()
            buf = []
            if any(ln.strip() and not ln.strip().startswith("--") for ln in stmt.splitlines()):
                statements.append(stmt)
    rest = "\n".join(buf).strip()
    if any(ln.strip() and not ln.strip().startswith("--") for ln in rest.splitlines()):
        statements.append(rest)
    return statements


def run_script(connection: Connection, script: str) -> None:
    for stmt in split_statements(script):
        connection.exec_driver_sql(stmt)
