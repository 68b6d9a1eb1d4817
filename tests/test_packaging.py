"""The wheel: every package is in it, and the migrations ship inside it."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import asyncpg
import pytest

from tests.helpers import with_db

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_is_listed():
    """pyproject.toml lists every package of the source tree, so none is left out of the wheel."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "gdpr_daemon").rglob("__init__.py")}
    found |= {"gdpr_daemon.migrations", "gdpr_daemon.migrations.versions"}
    assert found == listed, f"missing: {sorted(found - listed)}; listed but absent: {sorted(listed - found)}"


@pytest.mark.slow
async def test_installed_wheel_migrates_from_any_directory(tmp_path: Path, pg: asyncpg.Connection, db_url: str):
    """A wheel built from the tree carries the top-level migrations; installed alone, `migrate` builds the schema."""
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if build.returncode != 0:
        # no setuptools in the venv: let pip fetch the build backend
        build = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(ROOT)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("gdpr_daemon-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "gdpr_daemon/migrations/env.py" in names
    assert any(n.startswith("gdpr_daemon/migrations/versions/0001_") for n in names)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)

    name = f"gdpr_pkg_{secrets.token_hex(4)}"
    await pg.execute(f'CREATE DATABASE "{name}"')
    try:
        # -S: no site module, so the editable install of the checkout is not on the path;
        # the dependencies come from the venv's site-packages, gdpr_daemon from the wheel only.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GDPR_DAEMON_", "PYTHON"))}
        env["PYTHONPATH"] = os.pathsep.join([str(site), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
        env["GDPR_DAEMON_DATABASE_URL"] = with_db(db_url, name)
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-S", "-c",
            "import gdpr_daemon, sys; print(gdpr_daemon.__file__); from gdpr_daemon.cli import main; sys.exit(main(['migrate']))",
            cwd=elsewhere, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()
        assert out.decode().splitlines()[0].startswith(str(site)), out.decode()
        conn = await asyncpg.connect(with_db(db_url, name))
        try:
            assert await conn.fetchval("SELECT to_regclass('public.gdpr_requests') IS NOT NULL")
        finally:
            await conn.close()
    finally:
        await pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
