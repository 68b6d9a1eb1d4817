"""A stand-in for systemd's notify socket: an AF_UNIX datagram socket the test opens itself."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import tempfile
from pathlib import Path


class NotifySocket:
    """Binds a datagram socket (a short path, or an abstract name) and collects what arrives."""

    def __init__(self, *, abstract: bool = False) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._dir: str | None = None
        if abstract:
            name = f"gdpr-test-{os.getpid()}-{secrets.token_hex(4)}"
            self.sock.bind(b"\0" + name.encode())
            self.env_value = "@" + name
        else:
            # AF_UNIX paths are limited to 107 bytes: a short directory of our own.
            self._dir = tempfile.mkdtemp(prefix="sdn-", dir="/tmp")
            path = str(Path(self._dir) / "notify")
            self.sock.bind(path)
            self.env_value = path
        self.sock.setblocking(False)
        self.messages: list[str] = []

    async def expect(self, line: str, *, timeout: float = 30.0) -> list[str]:
        """Wait (bounded) for a datagram holding ``line``; every message so far, in order."""
        loop = asyncio.get_running_loop()

        async def read_until() -> None:
            while not any(line in m.splitlines() for m in self.messages):
                data = await loop.sock_recv(self.sock, 4096)
                self.messages.append(data.decode())

        try:
            await asyncio.wait_for(read_until(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {line!r} within {timeout} s; got {self.messages!r}") from None
        return self.messages

    def lines(self) -> list[str]:
        return [line for m in self.messages for line in m.splitlines()]

    def close(self) -> None:
        self.sock.close()
        if self._dir:
            for f in Path(self._dir).iterdir():
                f.unlink()
            os.rmdir(self._dir)
