"""Certificate verification is always on: a server whose certificate is not trusted never gets a call."""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from aiohttp import web

from gdpr_daemon.ownbackup import ClientConfig, ConnectionFailed, OwnBackupClient, RetryPolicy, SessionAuth
from tests.helpers import SIM_PASSWORD

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def self_signed(tmp_path: Path) -> ssl.SSLContext:
    """A server TLS context with a self-signed certificate for 127.0.0.1."""
    openssl = shutil.which("openssl")
    assert openssl, "the openssl command is needed to make a test certificate"
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


async def test_untrusted_certificate_is_refused(self_signed):
    """HTTPS to a server with a self-signed certificate fails with a clear sentence; the password is never sent."""
    seen: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.json_response({"session_id": "x"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self_signed)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        cfg = ClientConfig(base_url=f"https://127.0.0.1:{port}", auth=SessionAuth("dpo@example.com", SIM_PASSWORD),
                           retry=RetryPolicy(max_retries=0), timeout=10, connect_timeout=5)  # fmt: skip
        async with OwnBackupClient(cfg) as client:
            with pytest.raises(ConnectionFailed) as err:
                await client.list_services()
        assert "certificate" in str(err.value) and SIM_PASSWORD not in str(err.value)
        assert seen == [], "no request reached a server that could not prove who it is"
    finally:
        await runner.cleanup()


def test_no_code_turns_verification_off():
    """Nothing in the package disables certificate or host name checks."""
    pattern = re.compile(r"ssl\s*=\s*False|verify_ssl\s*=\s*False|CERT_NONE|check_hostname\s*=\s*False|_create_unverified_context")
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in (ROOT / "gdpr_daemon").rglob("*.py")
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]  # fmt: skip
    assert offenders == []
