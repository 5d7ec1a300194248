"""When a batch must stop, and where paid task ids go when the journal cannot take them.

:class:`BatchStop` is the batch's one stop switch: the first answer no later job can get
past (credentials refused, account blocked, credit exhausted) or a store/disk failure
after a create stops intake, and every job not yet sent ends with one shared
:class:`BatchAbortedError`. :class:`RecoveryLog` appends paid ids the journal could not
record to ``<journal path>.recovery.jsonl`` (one fsynced JSON line each);
:class:`StoreGuard` runs store writes and does both when one fails.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import anyio

from akool_async._errors import (
    AccountBlockedError,
    AuthenticationError,
    BatchAbortedError,
    InsufficientCreditError,
    JournalConflictError,
    JournalError,
)
from akool_async._store import JobLeasedError

__all__ = [
    "RECOVERY_SUFFIX",
    "BatchStop",
    "RecoveryLog",
    "StoreGuard",
    "stop_message",
    "stops_intake",
]

#: Appended to a journal's path to name its recovery file.
RECOVERY_SUFFIX = ".recovery.jsonl"

_logger = logging.getLogger("akool_async")
_T = TypeVar("_T")


def stops_intake(err: object) -> bool:
    """True for answers every later create would get too: refused credentials (1101,
    1102), a blocked account (1200), no credit left (1104)."""
    return isinstance(err, (AuthenticationError, AccountBlockedError, InsufficientCreditError))


def stop_message(cause: BaseException) -> str:
    """The shared message of the jobs a batch did not send because of ``cause``."""
    code = getattr(cause, "code", None)
    if isinstance(cause, AuthenticationError):
        why = f"Akool refused the API key or token (code {code})"
    elif isinstance(cause, AccountBlockedError):
        why = f"Akool reported the account as blocked (code {code})"
    elif isinstance(cause, InsufficientCreditError):
        why = f"Akool reported insufficient credit (code {code})"
    else:
        why = f"a task id could not be recorded ({cause})"
    return f"not sent: the batch stopped after {why}"


class BatchStop:
    """Set once; afterwards :meth:`check` raises the shared :class:`BatchAbortedError`."""

    def __init__(self) -> None:
        self.error: BatchAbortedError | None = None

    def stop(self, cause: BaseException) -> None:
        """Stop intake because of ``cause`` (only the first cause counts)."""
        if self.error is None:
            self.error = BatchAbortedError(stop_message(cause), cause=cause)
            _logger.error("%s", self.error)

    def check(self) -> None:
        """Raise the shared error once stopped: the caller must send nothing."""
        if self.error is not None:
            raise self.error


class RecoveryLog:
    """An append-only JSON-lines file of paid task ids that no store holds.

    ``path`` None (no journal file): the line goes to the ``akool_async`` logger only.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path

    async def append(
        self, *, key: str, task_id: str | None, kind: str, request: Any, error: BaseException
    ) -> None:
        """Write one line, fsynced, even while the caller is being cancelled."""
        line = json.dumps(
            {
                "key": key,
                "task_id": task_id,
                "kind": kind,
                "request": request,
                "error": f"{type(error).__name__}: {error}",
                "time": time.time(),
            },
            ensure_ascii=True,
            default=str,
        )
        # The id always reaches stderr, whatever happens to the file below.
        _logger.error("paid task id not recorded: %s", line)
        if self.path is None:
            return
        with anyio.CancelScope(shield=True):
            try:
                await anyio.to_thread.run_sync(_append_line, self.path, line)
            except OSError as err:
                # One line, no traceback: the id itself was logged just above.
                _logger.error("recovery file %s is not writable: %s", self.path, err)  # noqa: TRY400


def _append_line(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)


class StoreGuard:
    """Runs store writes: any failure (disk full, I/O error, a store bug) becomes a
    :class:`JournalError` carrying the task id, is appended to the recovery file when a
    task was paid for, and stops intake."""

    def __init__(self, stop: BatchStop, recovery: RecoveryLog) -> None:
        self._stop = stop
        self.recovery = recovery

    async def write(
        self,
        call: Awaitable[_T],
        *,
        key: str,
        step: str,
        task_id: str | None = None,
        request: Any = None,
    ) -> _T:
        """Await ``call`` (a store write for job ``key`` at ``step``)."""
        try:
            return await call
        except JournalConflictError:
            raise  # a key naming another request: that job's own error, the store is fine
        except JobLeasedError as exc:
            if task_id is None:
                raise  # another live member of the fleet owns the job: nothing paid here
            raise await self._failed(exc, key, step, task_id, request) from exc
        except Exception as exc:
            raise await self._failed(exc, key, step, task_id, request) from exc

    async def _failed(
        self, exc: Exception, key: str, step: str, task_id: str | None, request: Any
    ) -> JournalError:
        """The store failed: keep a paid id in the recovery file, stop intake, say so."""
        err = JournalError(
            f"the journal could not record {step} for job {key!r}: {type(exc).__name__}: {exc}",
            task_id=task_id,
        )
        err.__cause__ = exc
        if task_id is not None:
            await self.recovery.append(
                key=key, task_id=task_id, kind=step, request=request, error=exc
            )
        self._stop.stop(err)
        return err
