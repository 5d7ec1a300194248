"""The SQLite job store (``Journal``): one file that never loses a paid job id.

The batch engine writes each job here before its create is sent and the task id right
after the create returns (DESIGN.md §3, "Never lose an id"), so a killed process resumes
without creating anything twice.

States and transitions are those of :class:`~akool_async._store.JobStore`. A passing
deadline is *not* a state: the job stays ``created`` and :meth:`Journal.record_error`
stores the ``WaitTimeoutError``; a later run resumes polling it by id.

Ownership: one process at a time. Opening takes an exclusive OS lock on ``<path>.lock``
(see ``_lock.py``), released by :meth:`Journal.aclose` or by the process dying; a second
opener gets :class:`JournalLockedError` naming the holder. A journal is bound to the
``account`` digest and ``base_url`` it was first opened with (:class:`JournalBindingError`).

Every illegal transition raises :class:`JournalStateError`: it is a bug in the caller (or a
process that bypassed the lock, which the state check inside the write transaction turns
into an error instead of a duplicate create).

Durability: WAL mode with ``synchronous=NORMAL`` by default. A committed transaction
survives the process being killed at any instant (SIGKILL, OOM): the WAL is in the OS page
cache, which the kernel writes out. A power loss or kernel crash may lose the last few
transactions (never corrupt the file); pass ``synchronous="FULL"`` to fsync every commit
and be durable against that too, at the cost of one fsync per state change.

Threading: every call runs in a worker thread (``anyio.to_thread``, ``CapacityLimiter(1)``)
on one connection, one short ``BEGIN IMMEDIATE`` transaction at a time, in arrival order.

Cancellation: every write is shielded: once called it commits or rolls back as a whole,
and a pending cancellation reaches the caller at its next checkpoint (``mark_created``
must record a task id even for a batch cancelled just after the create). Reads are not.
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, TypeVar

import anyio
import anyio.to_thread
import attrs

from akool_async._clock import SYSTEM_CLOCK, Clock
from akool_async._errors import ConfigurationError, JournalError, JournalStateError

from ._base import StoreBase
from ._lock import JournalLock
from ._records import JobKind, JobRecord, JobState
from ._schema import (
    INSERT,
    SELECT_ONE,
    SELECT_PAGE,
    UPDATE,
    bind_identity,
    create_schema,
    enable_wal,
    get_download,
    inspect,
    put_download,
    row_to_record,
    write_transaction,
)

__all__ = ["DEFAULT_BUSY_TIMEOUT", "Journal", "count_states", "read_page"]

#: Seconds a call waits for a lock held by another process before failing.
DEFAULT_BUSY_TIMEOUT: Final = 10.0

_T = TypeVar("_T")

_Synchronous = Literal["NORMAL", "FULL"]


class Journal(StoreBase):
    """Async access to one journal file. Open it, use it from any number of tasks, close it.

    ::

        async with Journal("run.db") as journal:        # or: await Journal.open("run.db")
            rec = await journal.begin("order-17", kind="character_swap",
                                      fingerprint=fp, request=request_dict)
            await journal.mark_sending("order-17")      # committed before the create leaves
            task = await create(...)
            await journal.mark_created("order-17", task.id)

    Options: ``clock`` supplies wall-clock timestamps (default: the system clock);
    ``synchronous`` is ``"NORMAL"`` (default: durable against process death) or ``"FULL"``
    (also durable against power loss, one fsync per commit); ``busy_timeout`` (default
    10 s) is how long a call waits for SQLite's write lock. ``account`` (a digest of the
    credential, never the credential) and ``base_url`` bind the journal on first open;
    a later open with other values raises :class:`JournalBindingError`. Opening raises
    :class:`JournalLockedError` while another opener holds the journal.

    Write methods return the record as committed. Transition methods raise
    :class:`JournalStateError` on an unknown key or an illegal transition.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        synchronous: _Synchronous = "NORMAL",
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        account: str | None = None,
        base_url: str | None = None,
    ) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ConfigurationError(
                f"Journal synchronous must be 'NORMAL' or 'FULL', got {synchronous!r}"
            )
        if not isinstance(busy_timeout, (int, float)) or not (
            math.isfinite(busy_timeout) and busy_timeout >= 0
        ):
            raise ConfigurationError(
                f"Journal busy_timeout must be a finite number of seconds >= 0, "
                f"got {busy_timeout!r}"
            )
        self._path = os.fspath(path)
        self._clock = clock or SYSTEM_CLOCK
        self._synchronous = synchronous
        self._busy_timeout = float(busy_timeout)
        self._account = account
        self._base_url = base_url
        self._lock: JournalLock | None = None
        self._conn: sqlite3.Connection | None = None
        self._limiter: anyio.CapacityLimiter | None = None
        self._state: Literal["new", "opening", "open", "closed"] = "new"

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        synchronous: _Synchronous = "NORMAL",
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        account: str | None = None,
        base_url: str | None = None,
    ) -> Journal:
        """Open (creating if missing) the journal at ``path``; close it with :meth:`aclose`.

        Raises :class:`JournalLockedError` if another opener holds it,
        :class:`JournalFormatError` if the file is not a journal or is newer, and
        :class:`JournalBindingError` if it was made for another account or base URL.
        """
        journal = cls(
            path,
            clock=clock,
            synchronous=synchronous,
            busy_timeout=busy_timeout,
            account=account,
            base_url=base_url,
        )
        await journal._aopen()
        return journal

    @property
    def path(self) -> str:
        """The journal file's path as given."""
        return self._path

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` was called."""
        return self._state == "closed"

    async def _aopen(self) -> None:
        if self._state != "new":
            raise JournalStateError(f"journal {self._path} was already opened")
        self._state = "opening"
        self._limiter = anyio.CapacityLimiter(1)
        try:
            # Shielded: a cancellation mid-open must not leave a connection nobody closes.
            with anyio.CancelScope(shield=True):
                self._conn = await anyio.to_thread.run_sync(self._connect, limiter=self._limiter)
        except BaseException:
            self._state = "closed"
            raise
        self._state = "open"

    def _connect(self) -> sqlite3.Connection:
        # The lock comes first: a refused opener touches nothing else.
        if self._path != ":memory:":
            self._lock = JournalLock.acquire(self._path)
        try:
            return self._connect_locked()
        except BaseException:
            self._release_lock()
            raise

    def _connect_locked(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per call.
        conn = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout,
            isolation_level=None,
            check_same_thread=False,  # used by one worker thread at a time (limiter of 1)
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            # Inspect before changing anything: a foreign database is left untouched.
            kind = inspect(conn, self._path)
            enable_wal(conn, self._path)
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            if kind == "fresh":
                create_schema(conn, self._path)
            bind_identity(conn, self._path, account=self._account, base_url=self._base_url)
        except BaseException:
            conn.close()
            raise
        return conn

    async def aclose(self) -> None:
        """Close the connection after calls already queued have run. Idempotent."""
        if self._state == "closed":
            return
        self._state = "closed"
        if self._limiter is None:
            return
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._close_sync, limiter=self._limiter)

    def _close_sync(self) -> None:
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                conn.close()  # the last connection checkpoints the WAL into the main file
        finally:
            self._release_lock()

    def _release_lock(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    async def bind(self, *, account: str | None = None, base_url: str | None = None) -> None:
        """Bind an open journal to ``account``/``base_url`` as opening with them would.

        Raises :class:`JournalBindingError` if it was made for other values.
        """

        def run(conn: sqlite3.Connection) -> None:
            bind_identity(conn, self._path, account=account, base_url=base_url)

        await self._write(run)

    # ------------------------------------------------------------------ plumbing

    def _require_conn(self) -> sqlite3.Connection:
        # Checked in the worker, after queued calls: a call queued before aclose still runs.
        if self._conn is None:
            raise JournalStateError(f"journal {self._path} is closed")
        return self._conn

    async def _read(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        limiter = self._check_usable()
        return await anyio.to_thread.run_sync(self._call, fn, limiter=limiter)

    async def _write(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        limiter = self._check_usable()
        # Shielded so that the write happens once called, whatever the caller's fate (see
        # the module docstring); the transaction keeps it all-or-nothing.
        with anyio.CancelScope(shield=True):
            result = await anyio.to_thread.run_sync(self._call, fn, limiter=limiter)
        # Returned outside the block: mypy sees CancelScope.__exit__ as able to swallow.
        return result  # noqa: RET504

    def _check_usable(self) -> anyio.CapacityLimiter:
        if self._state != "open" or self._limiter is None:
            word = "closed" if self._state == "closed" else "not open"
            raise JournalStateError(
                f"journal {self._path} is {word}; use `async with Journal(path)` or "
                "`await Journal.open(path)`"
            )
        return self._limiter

    def _call(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        try:
            return fn(self._require_conn())
        except sqlite3.Error as exc:
            # Locked past busy_timeout, disk full, I/O error...: one SDK error type, with
            # the sqlite3 error as its cause. The transaction was rolled back.
            raise JournalError(f"journal {self._path}: {type(exc).__name__}: {exc}") from exc

    # ------------------------------------------------------------------ reads

    async def get(self, key: str) -> JobRecord | None:
        """The record for ``key``, or None."""

        def run(conn: sqlite3.Connection) -> JobRecord | None:
            row = conn.execute(SELECT_ONE, (key,)).fetchone()
            return None if row is None else row_to_record(row)

        return await self._read(run)

    async def _page(self, after: int, limit: int) -> list[JobRecord]:
        return await self._read(lambda conn: read_page(conn, after, limit))

    async def counts(self) -> dict[JobState, int]:
        """Number of records in every state (states with none give 0)."""

        return await self._read(count_states)

    # ------------------------------------------------------------------ writes

    async def begin(
        self, key: str, *, kind: JobKind, fingerprint: str, request: Mapping[str, Any]
    ) -> JobRecord:
        """Record a new ``pending`` job, or return the stored one for the same request.

        Raises :class:`JournalConflictError` if ``key`` exists with another kind or
        fingerprint. ``request`` is stored as canonical JSON.
        """
        request_json = self._request_json(key, kind, request)
        now = self._clock.wall()

        def run(conn: sqlite3.Connection) -> JobRecord:
            with write_transaction(conn):
                row = conn.execute(SELECT_ONE, (key,)).fetchone()
                if row is not None:
                    stored = row_to_record(row)
                    self._check_same_request(stored, kind, fingerprint)
                    return stored
                cur = conn.execute(
                    INSERT,
                    (key, kind, fingerprint, JobState.PENDING.value, request_json, now, now),
                )
                seq = cur.lastrowid
            assert seq is not None
            return JobRecord(
                seq=seq,
                key=key,
                kind=kind,
                fingerprint=fingerprint,
                state=JobState.PENDING,
                request_json=request_json,
                created_at=now,
                updated_at=now,
            )

        return await self._write(run)

    async def expect_download(self, key: str, facts: Mapping[str, Any]) -> None:
        """Record a download's facts (path, size, etag, sha256) before it is published."""
        await self._write(lambda conn: put_download(conn, key, facts))

    async def expected_download(self, key: str) -> dict[str, Any] | None:
        """The facts :meth:`expect_download` recorded for ``key``, or None."""
        return await self._read(lambda conn: get_download(conn, key))

    async def _apply(self, key: str, change: Callable[[JobRecord], JobRecord]) -> JobRecord:
        now = self._clock.wall()

        def run(conn: sqlite3.Connection) -> JobRecord:
            with write_transaction(conn):
                row = conn.execute(SELECT_ONE, (key,)).fetchone()
                if row is None:
                    raise JournalStateError(f"no job with key {key!r} in the journal", key=key)
                new = attrs.evolve(change(row_to_record(row)), updated_at=now)
                conn.execute(
                    UPDATE,
                    (
                        new.state.value,
                        new.task_id,
                        new.analysis_id,
                        new.result_raw_json,
                        new.error_json,
                        new.local_path,
                        new.attempts,
                        new.updated_at,
                        new.seq,
                    ),
                )
            return new

        return await self._write(run)

    def __repr__(self) -> str:
        return f"Journal({self._path!r}, {self._state})"


def read_page(conn: sqlite3.Connection, after: int, limit: int) -> list[JobRecord]:
    """Up to ``limit`` records of a journal with ``seq > after``, in ``seq`` order."""
    return [row_to_record(row) for row in conn.execute(SELECT_PAGE, (after, limit))]


def count_states(conn: sqlite3.Connection) -> dict[JobState, int]:
    """Number of a journal's records in every state (states with none give 0)."""
    found = dict.fromkeys(JobState, 0)
    for state, n in conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
        found[JobState(state)] = n
    return found
