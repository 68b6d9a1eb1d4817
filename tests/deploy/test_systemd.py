"""config/systemd: the unit systemd will run, checked by systemd's own tools where installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gdpr_daemon.config import Settings, env_name, load_settings

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "config" / "systemd" / "gdpr-daemon.service"
ENV_EXAMPLE = ROOT / "config" / "systemd" / "gdpr-daemon.env.example"
EXEC = "/opt/gdpr-daemon/bin/gdpr-daemon"


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Section -> [(key, value)] in order; repeated keys kept, as systemd reads them."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        key, _, value = line.partition("=")
        assert current is not None, f"{key} outside a section"
        current.append((key.strip(), value.strip()))
    return sections


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [v for k, v in section if k == key]


def one(section: list[tuple[str, str]], key: str) -> str:
    found = values(section, key)
    assert len(found) == 1, f"{key}= appears {len(found)} times"
    return found[0]


def seconds(span: str) -> float:
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", span):
        total += float(number) * units[unit]
    return total


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.skip("systemd-analyze is not installed here (apt-get install systemd); the parse tests still ran")
    return path


def unit_with_stub_exec(tmp_path: Path) -> Path:
    """The unit verbatim but for the Exec lines' path, which points at a stub: verify wants it executable."""
    stub = tmp_path / "gdpr-daemon"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    unit = tmp_path / "gdpr-daemon.service"
    text = UNIT.read_text(encoding="utf-8")
    assert text.count(f"ExecStart={EXEC} ") == 1 and text.count(f"ExecStartPre={EXEC} ") == 1
    unit.write_text(text.replace(f"ExecStart={EXEC} ", f"ExecStart={stub} ")
                    .replace(f"ExecStartPre={EXEC} ", f"ExecStartPre={stub} "))  # fmt: skip
    return unit


def test_unit_is_notify_with_watchdog_and_stop_bound():
    """Type=notify from the main process, a watchdog, restart on failure, and a stop timeout beyond the drain bound."""
    svc = parse_unit(UNIT)["Service"]
    assert one(svc, "Type") == "notify"
    assert one(svc, "NotifyAccess") == "main"
    assert one(svc, "ExecStart") == f"{EXEC} run"
    assert seconds(one(svc, "WatchdogSec")) > 0
    assert one(svc, "Restart") == "on-failure"
    drain = Settings.model_fields["queue_shutdown_timeout_seconds"].default
    assert seconds(one(svc, "TimeoutStopSec")) > drain + 10, "room for the drain plus logout"


def test_unit_hardening():
    """The unit runs with no privileges, a read-only system, and only the address families it needs."""
    svc = parse_unit(UNIT)["Service"]
    expected = {
        "DynamicUser": "yes",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "RestrictNamespaces": "yes",
        "RestrictSUIDSGID": "yes",
        "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes",
    }
    assert {k: one(svc, k) for k in expected} == expected
    assert set(one(svc, "RestrictAddressFamilies").split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert "@system-service" in values(svc, "SystemCallFilter")


def test_unit_password_is_a_credential_the_settings_read(tmp_path):
    """LoadCredential= names the credential config.py reads from $CREDENTIALS_DIRECTORY; the rest is an EnvironmentFile."""
    svc = parse_unit(UNIT)["Service"]
    name, _, source = one(svc, "LoadCredential").partition(":")
    assert source.startswith("/etc/gdpr-daemon/")
    assert one(svc, "EnvironmentFile").lstrip("-") == "/etc/gdpr-daemon/gdpr-daemon.env"
    secret = "credential-" + os.urandom(6).hex()
    (tmp_path / name).write_text(secret + "\n")
    env = dict(env_file(), CREDENTIALS_DIRECTORY=str(tmp_path))
    settings = load_settings(None, environ=env)
    assert settings.ownbackup_password is not None
    assert settings.ownbackup_password.get_secret_value() == secret


def env_file() -> dict[str, str]:
    env = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def test_env_example_names_real_settings_and_no_secret():
    """Every variable in the example EnvironmentFile is a setting; it loads; no password or token is in it."""
    env = env_file()
    known = {env_name(k) for k in Settings.model_fields}
    assert set(env) <= known, set(env) - known
    assert not {k for k in env if "PASSWORD" in k or "TOKEN" in k}
    settings = load_settings(None, environ=env)
    settings.require_database()
    drain = settings.queue_shutdown_timeout_seconds
    assert seconds(one(parse_unit(UNIT)["Service"], "TimeoutStopSec")) > drain


def test_systemd_analyze_verify(tmp_path):
    """`systemd-analyze verify` accepts the unit without a single warning."""
    tool = systemd_analyze()
    unit = unit_with_stub_exec(tmp_path)
    proc = subprocess.run([tool, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr


def test_systemd_analyze_security_rates_it_ok(tmp_path):
    """`systemd-analyze security` rates the unit's exposure at most 2.0 of 10 ("OK")."""
    tool = systemd_analyze()
    unit = unit_with_stub_exec(tmp_path)
    proc = subprocess.run(
        [tool, "security", "--offline=yes", "--threshold=20", "--no-pager", str(unit)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if "--offline" in proc.stderr and "unrecognized" in proc.stderr:
        pytest.skip("this systemd-analyze has no --offline (systemd < 250)")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
