"""One process at a time: an exclusive OS lock on a sidecar file ``<journal>.lock``.

``flock(LOCK_EX | LOCK_NB)`` belongs to the open file, so the kernel releases it when the
file is closed or the process dies (SIGKILL, OOM, power off): a crash leaves nothing to
clean up. A second opener, in another process or in this one, is refused at once. The
holder writes its host, pid and start time into the file so that the refused opener can
name it. The lock file is never deleted: unlinking a lock file lets two processes lock two
different files of the same name.

Windows has no ``fcntl``: there the journal is opened without a lock and a warning is
logged.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import socket
import sys

from akool_async._errors import JournalError, JournalHolder, JournalLockedError

if sys.platform != "win32":
    import fcntl

__all__ = ["JournalLock"]

_logger = logging.getLogger("akool_async")
# The holder's line is short; anything longer is not ours.
_MAX_HOLDER_BYTES = 4096


class JournalLock:
    """The held lock of one journal; :meth:`release` (idempotent) lets it go."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    @classmethod
    def acquire(cls, journal_path: str) -> JournalLock:
        """Lock ``<journal_path>.lock`` or raise :class:`JournalLockedError` naming the holder.

        Blocking system calls: run it off the event loop.
        """
        if sys.platform == "win32":  # pragma: no cover - no fcntl on Windows
            _logger.warning(
                "journal %s: locking is not supported on Windows; make sure no other "
                "process uses it at the same time",
                journal_path,
            )
            return cls(None)
        lock_path = journal_path + ".lock"
        try:
            # No O_TRUNC: until we hold the lock, the file's content is the holder's.
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise JournalError(
                f"journal {journal_path}: cannot open its lock file {lock_path}: {exc}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise JournalLockedError(journal_path, holder) from None
        except OSError as exc:
            os.close(fd)
            raise JournalError(f"journal {journal_path}: cannot lock {lock_path}: {exc}") from exc
        try:
            _write_holder(fd)
        except OSError:
            # The lock itself is what matters; a holder line is only for messages.
            _logger.debug("journal %s: could not write the holder line", journal_path)
        return cls(fd)

    def release(self) -> None:
        """Clear the holder line and unlock (by closing the file). Idempotent."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):  # the lock goes with the close below either way
            os.ftruncate(fd, 0)
        os.close(fd)


def _write_holder(fd: int) -> None:
    # The real time, not the journal's clock: other processes read it as a fact about now.
    stamp = datetime.datetime.now(tz=datetime.timezone.utc)
    line = json.dumps(
        {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )
    data = (line + "\n").encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def _read_holder(fd: int) -> JournalHolder | None:
    """The holder named in the lock file, or None while it is still being written."""
    try:
        data = json.loads(os.pread(fd, _MAX_HOLDER_BYTES, 0))
        return JournalHolder(host=str(data["host"]), pid=int(data["pid"]), since=str(data["since"]))
    except (OSError, ValueError, TypeError, KeyError):
        return None
