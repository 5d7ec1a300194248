"""A throwaway PostgreSQL cluster for tests: ``initdb`` in a temp dir, a Unix socket, torn down.

``PostgresCluster`` runs the server binaries named by ``pg_config --bindir`` (or
``AKOOL_PG_BINDIR``). As root they run as the ``postgres`` system user (PostgreSQL refuses
to run as root); otherwise as the current user. The server listens only on a Unix socket
inside its own directory, trusts local connections and runs with ``fsync=off`` (the data
is thrown away). A server that does not start raises :class:`ClusterStartError` carrying
its log, so a test using it fails with the reason instead of being skipped. A small
watchdog shell stops and deletes the cluster even if the test process is killed outright.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["ClusterStartError", "PostgresCluster", "postgres_cluster"]

#: Seconds the server may take to start before the tests fail.
START_TIMEOUT = 30
#: The database created for the tests.
DATABASE = "akool"
_SERVER_USER = "postgres"


class ClusterStartError(RuntimeError):
    """The throwaway server could not be created or started; the message holds its log."""


def _bindir() -> Path:
    configured = os.environ.get("AKOOL_PG_BINDIR")
    if configured:
        return Path(configured)
    try:
        out = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ClusterStartError(f"cannot locate PostgreSQL: pg_config --bindir: {exc}") from exc
    return Path(out.stdout.strip())


class PostgresCluster:
    """One temporary cluster. Use :func:`postgres_cluster` (a context manager) to get one."""

    def __init__(self) -> None:
        self.bindir = _bindir()
        self.as_root = os.geteuid() == 0
        # Short path under /tmp: a Unix socket path must stay under ~107 bytes, and the
        # postgres user must be able to enter it (pytest's tmp dirs are private to root).
        self.root = Path(tempfile.mkdtemp(prefix="akool-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.started = False
        self._watchdog: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        """An asyncpg/libpq URL for the test database over the Unix socket."""
        return f"postgresql://{_SERVER_USER}@/{DATABASE}?host={self.root}"

    def admin_dsn(self, database: str = "postgres") -> str:
        """A URL for another database of the cluster (to create or drop databases)."""
        return f"postgresql://{_SERVER_USER}@/{database}?host={self.root}"

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", _SERVER_USER, "--", *command]
        try:
            return subprocess.run(
                command, capture_output=True, text=True, timeout=START_TIMEOUT + 10, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ClusterStartError(
                f"{tool} did not run: {exc}\nserver log:\n{self.server_log()}"
            ) from exc

    def _check(self, result: subprocess.CompletedProcess[str], what: str) -> None:
        if result.returncode != 0:
            raise ClusterStartError(
                f"{what} failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}\n"
                f"server log:\n{self.server_log()}"
            )

    def server_log(self) -> str:
        """The server's log so far (empty if it never wrote one)."""
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def start(self) -> None:
        """initdb, start the server (at most START_TIMEOUT s) and create the test database."""
        if self.as_root:
            shutil.chown(self.root, user=_SERVER_USER, group=_SERVER_USER)
        self._check(
            self._run(
                "initdb", "-D", str(self.data), "-U", _SERVER_USER, "-A", "trust",
                "-E", "UTF8", "--no-sync", "--no-instructions",
            ),
            "initdb",
        )
        options = (
            f"-c listen_addresses='' -c unix_socket_directories='{self.root}' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=100"
        )
        result = self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
            "-w", "-t", str(START_TIMEOUT), "start",
        )
        self.started = True  # even a failed start may have left a process to stop
        self._start_watchdog()
        self._check(result, "pg_ctl start")
        self._check(
            self._run("createdb", "-h", str(self.root), "-U", _SERVER_USER, DATABASE),
            "createdb",
        )

    def _start_watchdog(self) -> None:
        # A test process killed outright (pytest-timeout, SIGKILL) runs no teardown. This
        # shell waits for our end of its stdin to close, which happens however we exit,
        # then stops the server and deletes the directory. Own session: Ctrl-C spares it.
        stop = [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]
        if self.as_root:
            stop = ["runuser", "-u", _SERVER_USER, "--", *stop]
        script = 'read _; "$@" >/dev/null 2>&1; rm -rf "$ROOT"'
        self._watchdog = subprocess.Popen(
            ["sh", "-c", script, "watchdog", *stop],
            stdin=subprocess.PIPE,
            env={**os.environ, "ROOT": str(self.root)},
            start_new_session=True,
        )

    def stop(self) -> None:
        """Stop the server at once and delete its directory (safe to call twice)."""
        try:
            if self.started:
                self.started = False
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            watchdog, self._watchdog = self._watchdog, None
            if watchdog is not None:
                assert watchdog.stdin is not None
                watchdog.stdin.close()  # it finds nothing left to stop or delete
                watchdog.wait(timeout=START_TIMEOUT)


@contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A started throwaway cluster, always stopped and removed on exit."""
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
