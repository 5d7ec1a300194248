"""Crash-safe job journal: one SQLite file that never loses a paid job id.

The batch engine writes each job here before its create is sent and the task id right
after the create returns (DESIGN.md §3, "Never lose an id"), so a killed process resumes
without creating anything twice.

Job states and the only legal transitions::

    pending ──► sending ──► created ──► completed
       │           │           └──────► failed
       │           ├──► uncertain ──(resubmit_uncertain=True)──► sending
       └───────────┴──► rejected ──► sending

- ``pending``: recorded, nothing sent.
- ``sending``: the create is about to leave; committed BEFORE the request is sent, so a
  crash after this point is never mistaken for "not sent".
- ``created``: the task id is known; committed right after the create returns.
- ``completed`` / ``failed``: terminal remote status, with the result's raw data.
- ``uncertain``: the create was sent and its answer was lost; a task may exist and may be
  charged. Only an explicit ``mark_sending(key, resubmit_uncertain=True)`` leaves it.
- ``rejected``: a definite error before or at the create (validation, 1104, a connection
  that failed before sending...). Nothing was created, so a later run may send it again
  (``rejected -> sending``) without any risk of paying twice; whether it does is the
  batch's policy.

A passing deadline is *not* a state: the remote task keeps running, so the job stays
``created`` and :meth:`Journal.record_error` stores the ``WaitTimeoutError``. A later run
resumes polling by id exactly as for any other ``created`` job; a separate ``timed_out``
state would be handled identically and only add a transition.

Every illegal transition raises :class:`JournalStateError`: it is a bug in the caller (or a
second process driving the same journal, which the state check inside the write
transaction turns into an error instead of a duplicate create).

Durability: WAL mode with ``synchronous=NORMAL`` by default. A committed transaction
survives the process being killed at any instant (SIGKILL, OOM): the WAL is in the OS page
cache, which the kernel writes out. A power loss or kernel crash may lose the last few
transactions (never corrupt the file); pass ``synchronous="FULL"`` to fsync every commit
and be durable against that too, at the cost of one fsync per state change.

Threading: stdlib ``sqlite3`` blocks, so every call runs off the event loop in a worker
thread through ``anyio.to_thread.run_sync`` with a ``CapacityLimiter(1)``: one
connection (``check_same_thread=False``), one call at a time, each call one short
transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``). Many tasks may call concurrently; their
calls are serialised in arrival order.

Cancellation: every write is shielded. Once a write method is called it runs to its end
(the transaction either commits or rolls back as a whole) and returns; a pending
cancellation is delivered at the caller's next checkpoint. This matters for
``mark_created``: a batch cancelled just after a create returned must still record the
task id. Reads are not shielded; a cancelled read does no harm.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import math
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import Any, Final, Literal, TypeVar, cast

import anyio
import anyio.to_thread
import attrs

from . import _errors
from ._clock import SYSTEM_CLOCK, Clock
from ._errors import (
    AkoolError,
    ConfigurationError,
    JournalConflictError,
    JournalError,
    JournalFormatError,
    JournalStateError,
)

__all__ = [
    "DEFAULT_BUSY_TIMEOUT",
    "SCHEMA_VERSION",
    "JobKind",
    "JobRecord",
    "JobState",
    "Journal",
    "JournalConflictError",
    "JournalError",
    "JournalFormatError",
    "JournalStateError",
    "error_from_json",
    "error_to_json",
    "request_fingerprint",
]

#: Schema version written by this code. A file with a higher version is refused.
SCHEMA_VERSION: Final = 1
#: Seconds a call waits for a lock held by another process before failing.
DEFAULT_BUSY_TIMEOUT: Final = 10.0
# ``PRAGMA application_id`` marks the file as ours ("AKJ1"); `file(1)` shows it too.
_APPLICATION_ID: Final = 0x414B4A31

JobKind = Literal["character_swap", "head_swap"]
_KINDS: Final = frozenset({"character_swap", "head_swap"})

_T = TypeVar("_T")


# --------------------------------------------------------------------------- states


class JobState(str, enum.Enum):
    """Where a journalled job stands; see the module docstring for the transitions."""

    PENDING = "pending"
    SENDING = "sending"
    CREATED = "created"
    COMPLETED = "completed"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    REJECTED = "rejected"

    def __str__(self) -> str:
        return self.value

    @property
    def is_terminal(self) -> bool:
        """True for ``completed``, ``failed`` and ``rejected`` (the run is over for the job).

        ``uncertain`` is not terminal: it waits for a human decision (resubmit or not).
        """
        return self in _TERMINAL


_TERMINAL: Final = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.REJECTED})

_S = JobState
#: target state -> states it may be entered from (uncertain -> sending needs the flag).
_ALLOWED_FROM: Final[Mapping[JobState, frozenset[JobState]]] = {
    _S.SENDING: frozenset({_S.PENDING, _S.REJECTED, _S.UNCERTAIN}),
    _S.CREATED: frozenset({_S.SENDING}),
    _S.UNCERTAIN: frozenset({_S.SENDING}),
    _S.REJECTED: frozenset({_S.PENDING, _S.SENDING}),
    _S.COMPLETED: frozenset({_S.CREATED}),
    _S.FAILED: frozenset({_S.CREATED}),
}


# --------------------------------------------------------------------------- records


@attrs.frozen(kw_only=True)
class JobRecord:
    """One job as stored in the journal (a snapshot; it does not change under you).

    JSON columns are kept as text (``request_json``, ``result_raw_json``, ``error_json``)
    so records stay hashable and cheap; the properties decode them on demand.
    Timestamps are wall-clock seconds since the epoch.
    """

    seq: int  # insertion order
    key: str
    kind: str
    fingerprint: str
    state: JobState
    request_json: str
    task_id: str | None = None
    analysis_id: str | None = None
    result_raw_json: str | None = None
    error_json: str | None = None
    local_path: str | None = None
    attempts: int = 0  # how many times the create was marked as sending
    created_at: float
    updated_at: float

    @property
    def request(self) -> dict[str, Any]:
        """The request dict as given to :meth:`Journal.begin` (a fresh copy)."""
        return cast("dict[str, Any]", json.loads(self.request_json))

    @property
    def result_raw(self) -> dict[str, Any] | None:
        """The terminal result's raw data, or None."""
        if self.result_raw_json is None:
            return None
        return cast("dict[str, Any]", json.loads(self.result_raw_json))

    @property
    def error(self) -> AkoolError | None:
        """The recorded error rebuilt as its exception class, or None."""
        return None if self.error_json is None else error_from_json(self.error_json)


_COLUMNS: Final = (
    "seq, key, kind, fingerprint, state, request, task_id, analysis_id, result_raw, error, "
    "local_path, attempts, created_at, updated_at"
)
_SELECT_ONE: Final = f"SELECT {_COLUMNS} FROM jobs WHERE key = ?"  # noqa: S608 (constant)
_SELECT_PAGE: Final = f"SELECT {_COLUMNS} FROM jobs WHERE seq > ? ORDER BY seq LIMIT ?"  # noqa: S608
_UPDATE: Final = (
    "UPDATE jobs SET state = ?, task_id = ?, analysis_id = ?, result_raw = ?, error = ?, "
    "local_path = ?, attempts = ?, updated_at = ? WHERE seq = ?"
)
_INSERT: Final = (
    "INSERT INTO jobs (key, kind, fingerprint, state, request, attempts, created_at, "
    "updated_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?)"
)

_SCHEMA_V1: Final = (
    "CREATE TABLE journal_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    """CREATE TABLE jobs (
        seq         INTEGER PRIMARY KEY,
        key         TEXT NOT NULL UNIQUE,
        kind        TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        state       TEXT NOT NULL,
        request     TEXT NOT NULL,
        task_id     TEXT,
        analysis_id TEXT,
        result_raw  TEXT,
        error       TEXT,
        local_path  TEXT,
        attempts    INTEGER NOT NULL DEFAULT 0,
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL
    )""",
)


def _row_to_record(row: tuple[Any, ...]) -> JobRecord:
    return JobRecord(
        seq=row[0],
        key=row[1],
        kind=row[2],
        fingerprint=row[3],
        state=JobState(row[4]),
        request_json=row[5],
        task_id=row[6],
        analysis_id=row[7],
        result_raw_json=row[8],
        error_json=row[9],
        local_path=row[10],
        attempts=row[11],
        created_at=row[12],
        updated_at=row[13],
    )


# --------------------------------------------------------------------------- JSON helpers


def _dumps(value: object) -> str:
    # Canonical form: the same dict always gives the same text (and fingerprint).
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def request_fingerprint(kind: str, request: Mapping[str, Any]) -> str:
    """SHA-256 hex of the kind and the canonical JSON of ``request`` (key order ignored)."""
    return hashlib.sha256(f"{kind}\n{_dumps(request)}".encode()).hexdigest()


_MISSING: Final = object()
_MAX_CAUSE_DEPTH: Final = 4


def _json_safe(value: object) -> object:
    """``value`` as plain JSON data, or ``_MISSING`` when it cannot be stored faithfully."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _MISSING
    if isinstance(value, (list, tuple)):
        items = [_json_safe(v) for v in value]
        return _MISSING if any(i is _MISSING for i in items) else items
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        pairs = {k: _json_safe(v) for k, v in value.items()}
        return _MISSING if any(v is _MISSING for v in pairs.values()) else pairs
    return _MISSING


def _error_data(err: BaseException, depth: int) -> dict[str, Any]:
    if isinstance(err, AkoolError):
        message = err.message
        attributes: dict[str, object] = {}
        for name, value in vars(err).items():
            # Objects such as SubmissionUncertainError.request or TaskFailedError.result
            # are not JSON; the journal keeps the request and result_raw separately.
            safe = _json_safe(value)
            if name != "message" and safe is not _MISSING:
                attributes[name] = safe
    else:
        message, attributes = str(err), {}
    data: dict[str, Any] = {"type": type(err).__name__, "message": message, "attrs": attributes}
    cause = err.__cause__
    if cause is not None and depth < _MAX_CAUSE_DEPTH:
        data["cause"] = _error_data(cause, depth + 1)
    return data


def error_to_json(err: BaseException) -> str:
    """Serialise an exception: class name, message, JSON-safe attributes and its cause.

    Attributes that are not plain data (a request or result object) are left out. Errors
    never carry credentials, so nothing secret is written.
    """
    return _dumps(_error_data(err, 0))


def _error_classes() -> dict[str, type[AkoolError]]:
    # Only AkoolError subclasses can be rebuilt: a stored name never picks arbitrary code.
    found: dict[str, type[AkoolError]] = {}
    for name in dir(_errors):
        obj = getattr(_errors, name)
        if isinstance(obj, type) and issubclass(obj, AkoolError):
            found[name] = obj
    for cls in (JournalError, JournalFormatError, JournalConflictError, JournalStateError):
        found[cls.__name__] = cls
    return found


_ERROR_CLASSES: Final = _error_classes()
_BASE_ATTRIBUTES: Final = ("method", "path", "http_status", "code", "msg", "task_id")


def _tuplify(value: object) -> object:
    # Error attributes hold tuples (ValidationError.errors, FaceMappingError.missing);
    # JSON turned them into lists.
    if isinstance(value, list):
        return tuple(_tuplify(v) for v in value)
    return value


def _error_from_data(data: Mapping[str, Any]) -> AkoolError:
    name = str(data.get("type", "AkoolError"))
    message = str(data.get("message", ""))
    cls = _ERROR_CLASSES.get(name)
    if cls is None:
        cls, message = AkoolError, f"{name}: {message}"
    # Rebuild without calling __init__ (subclass signatures differ), like
    # AkoolError.__reduce__ does for pickling.
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    state: dict[str, object] = dict.fromkeys(_BASE_ATTRIBUTES)
    attributes = data.get("attrs") or {}
    state.update((k, _tuplify(v)) for k, v in attributes.items() if str(k).isidentifier())
    state["message"] = message
    err.__dict__.update(state)
    cause = data.get("cause")
    if isinstance(cause, Mapping):
        err.__cause__ = _error_from_data(cause)
    return err


def error_from_json(text: str) -> AkoolError:
    """Rebuild an error written by :func:`error_to_json` as its ``akool_async`` class.

    An unknown class name (a builtin exception, or a class from a newer version) gives a
    plain :class:`AkoolError` whose message starts with the original class name.
    """
    data = json.loads(text)
    if not isinstance(data, Mapping):
        raise TypeError(f"not a serialised error: {text[:80]!r}")
    return _error_from_data(data)


# --------------------------------------------------------------------------- SQLite helpers


@contextlib.contextmanager
def _write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock up front, so busy_timeout applies and a read-then-write
    # transaction can never fail half-way on a lock upgrade.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _inspect(conn: sqlite3.Connection, path: str) -> Literal["fresh", "journal"]:
    """Classify an open database, raising JournalFormatError for anything not ours."""
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    except sqlite3.DatabaseError as exc:
        raise JournalFormatError(
            f"{path} is not an akool-async journal: not a readable SQLite database ({exc})",
            path=path,
        ) from exc
    if not tables and app_id == 0:
        return "fresh"
    if app_id != _APPLICATION_ID or "journal_meta" not in tables or "jobs" not in tables:
        raise JournalFormatError(
            f"{path} is an SQLite database but not an akool-async journal "
            f"(tables: {', '.join(sorted(tables)) or 'none'}); refusing to touch it",
            path=path,
        )
    row = conn.execute("SELECT value FROM journal_meta WHERE name = 'schema_version'").fetchone()
    try:
        version = int(row[0])
    except (TypeError, ValueError):
        raise JournalFormatError(
            f"{path}: journal has no valid schema_version", path=path
        ) from None
    if version > SCHEMA_VERSION:
        raise JournalFormatError(
            f"{path} was written by a newer akool-async (journal schema {version}; this "
            f"version reads schema {SCHEMA_VERSION}); upgrade akool-async to use it",
            path=path,
        )
    if version < 1:
        raise JournalFormatError(f"{path}: unknown journal schema {version}", path=path)
    return "journal"


def _enable_wal(conn: sqlite3.Connection, path: str) -> None:
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    # WAL is what makes a commit survive a killed process cheaply; refuse to run without it
    # (e.g. on a file system without shared memory support).
    if str(mode).lower() != "wal" and path != ":memory:":
        raise JournalError(f"{path}: could not enable WAL mode (got journal_mode={mode!r})")


# --------------------------------------------------------------------------- the journal

_Synchronous = Literal["NORMAL", "FULL"]


class Journal:
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
    10 s) is how long a call waits for a lock held by another process.

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
    ) -> Journal:
        """Open (creating if missing) the journal at ``path``; close it with :meth:`aclose`.

        Raises :class:`JournalFormatError` if the file is not a journal or is newer.
        """
        journal = cls(path, clock=clock, synchronous=synchronous, busy_timeout=busy_timeout)
        await journal._aopen()
        return journal

    async def __aenter__(self) -> Journal:
        await self._aopen()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

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
            kind = _inspect(conn, self._path)
            _enable_wal(conn, self._path)
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            if kind == "fresh":
                with _write_transaction(conn):
                    # Another process may have created it since we looked.
                    if _inspect(conn, self._path) == "fresh":
                        for statement in _SCHEMA_V1:
                            conn.execute(statement)
                        conn.executemany(
                            "INSERT INTO journal_meta (name, value) VALUES (?, ?)",
                            [("schema_version", str(SCHEMA_VERSION)), ("creator", "akool-async")],
                        )
                        conn.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
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
        if conn is not None:
            conn.close()  # the last connection checkpoints the WAL into the main file

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
            row = conn.execute(_SELECT_ONE, (key,)).fetchone()
            return None if row is None else _row_to_record(row)

        return await self._read(run)

    async def records(self, states: Iterable[JobState | str] | None = None) -> list[JobRecord]:
        """All records (or those in ``states``) in insertion order."""
        return [rec async for rec in self.iter_records(states)]

    async def iter_records(
        self, states: Iterable[JobState | str] | None = None, *, page_size: int = 1000
    ) -> AsyncIterator[JobRecord]:
        """Records (or those in ``states``) in insertion order, read ``page_size`` at a time.

        Each page is its own short read, so writers are never blocked by a slow consumer;
        records inserted while iterating appear if they come after the current page.
        """
        wanted = None if states is None else frozenset(JobState(s) for s in states)
        last = 0
        while True:

            def page(conn: sqlite3.Connection, after: int = last) -> list[JobRecord]:
                rows = conn.execute(_SELECT_PAGE, (after, page_size)).fetchall()
                return [_row_to_record(row) for row in rows]

            batch = await self._read(page)
            if not batch:
                return
            for rec in batch:
                if wanted is None or rec.state in wanted:
                    yield rec
            last = batch[-1].seq

    async def counts(self) -> dict[JobState, int]:
        """Number of records in every state (states with none give 0)."""

        def run(conn: sqlite3.Connection) -> dict[JobState, int]:
            found = dict.fromkeys(JobState, 0)
            for state, n in conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
                found[JobState(state)] = n
            return found

        return await self._read(run)

    # ------------------------------------------------------------------ writes

    async def begin(
        self, key: str, *, kind: JobKind, fingerprint: str, request: Mapping[str, Any]
    ) -> JobRecord:
        """Record a new ``pending`` job, or return the stored one for the same request.

        Raises :class:`JournalConflictError` if ``key`` exists with another kind or
        fingerprint. ``request`` is stored as canonical JSON.
        """
        if not isinstance(key, str):
            raise TypeError(f"journal key must be a str, got {type(key).__name__}")
        if not key:
            raise ValueError("journal key must not be empty")
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {sorted(_KINDS)}, got {kind!r}")
        request_json = _dumps(dict(request))
        now = self._clock.wall()

        def run(conn: sqlite3.Connection) -> JobRecord:
            with _write_transaction(conn):
                row = conn.execute(_SELECT_ONE, (key,)).fetchone()
                if row is not None:
                    stored = _row_to_record(row)
                    if stored.fingerprint != fingerprint or stored.kind != kind:
                        raise JournalConflictError(
                            key,
                            kind=kind,
                            fingerprint=fingerprint,
                            stored_kind=stored.kind,
                            stored_fingerprint=stored.fingerprint,
                        )
                    return stored
                cur = conn.execute(
                    _INSERT,
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

    async def mark_sending(self, key: str, *, resubmit_uncertain: bool = False) -> JobRecord:
        """``pending``/``rejected`` -> ``sending``; committed before returning.

        Call it immediately before sending the create. From ``uncertain`` only with
        ``resubmit_uncertain=True`` (the caller accepts the risk of paying twice).
        Increments ``attempts`` and clears the stored error.
        """

        def change(rec: JobRecord) -> JobRecord:
            if rec.state is JobState.UNCERTAIN and not resubmit_uncertain:
                raise JournalStateError(
                    f"job {key!r} is uncertain (its create may have created a task); "
                    "resending it needs resubmit_uncertain=True",
                    key=key,
                    state=rec.state.value,
                    target=JobState.SENDING.value,
                )
            return attrs.evolve(rec, attempts=rec.attempts + 1, error_json=None)

        return await self._transition(key, JobState.SENDING, change)

    async def mark_created(
        self, key: str, task_id: str, *, analysis_id: str | None = None
    ) -> JobRecord:
        """``sending`` -> ``created`` with the task id; committed before returning."""
        if not task_id:
            raise ValueError("task_id must be a non-empty str")

        def change(rec: JobRecord) -> JobRecord:
            return attrs.evolve(
                rec, task_id=task_id, analysis_id=analysis_id or rec.analysis_id, error_json=None
            )

        return await self._transition(key, JobState.CREATED, change)

    async def mark_uncertain(self, key: str, error: BaseException) -> JobRecord:
        """``sending`` -> ``uncertain``: the create was sent and its answer lost."""
        error_json = error_to_json(error)
        return await self._transition(
            key, JobState.UNCERTAIN, lambda rec: attrs.evolve(rec, error_json=error_json)
        )

    async def mark_rejected(self, key: str, error: BaseException) -> JobRecord:
        """``pending``/``sending`` -> ``rejected``: a definite error, nothing was created."""
        error_json = error_to_json(error)
        return await self._transition(
            key, JobState.REJECTED, lambda rec: attrs.evolve(rec, error_json=error_json)
        )

    async def mark_completed(self, key: str, result_raw: Mapping[str, Any]) -> JobRecord:
        """``created`` -> ``completed`` with the result's raw data."""
        raw_json = _dumps(dict(result_raw))
        return await self._transition(
            key,
            JobState.COMPLETED,
            lambda rec: attrs.evolve(rec, result_raw_json=raw_json, error_json=None),
        )

    async def mark_failed(
        self, key: str, result_raw: Mapping[str, Any] | None, error: BaseException
    ) -> JobRecord:
        """``created`` -> ``failed`` with the result's raw data and the error."""
        raw_json = None if result_raw is None else _dumps(dict(result_raw))
        error_json = error_to_json(error)
        return await self._transition(
            key,
            JobState.FAILED,
            lambda rec: attrs.evolve(rec, result_raw_json=raw_json, error_json=error_json),
        )

    async def record_error(self, key: str, error: BaseException) -> JobRecord:
        """Store a non-terminal error (e.g. ``WaitTimeoutError``) on a ``created`` job.

        The state stays ``created``: the remote task may still finish, and a later run
        resumes polling it by id.
        """
        error_json = error_to_json(error)
        return await self._update(
            key,
            frozenset({JobState.CREATED}),
            lambda rec: attrs.evolve(rec, error_json=error_json),
            "record an error on",
        )

    async def set_analysis_id(self, key: str, analysis_id: str) -> JobRecord:
        """Store a finished head-swap analysis id before the create (``pending``/``rejected``).

        A resumed run can then skip re-analysing the video.
        """
        return await self._update(
            key,
            frozenset({JobState.PENDING, JobState.REJECTED}),
            lambda rec: attrs.evolve(rec, analysis_id=analysis_id),
            "set the analysis id of",
        )

    async def set_local_path(self, key: str, path: str | os.PathLike[str]) -> JobRecord:
        """Record where a ``completed`` job's output was downloaded."""
        local = os.fspath(path)
        return await self._update(
            key,
            frozenset({JobState.COMPLETED}),
            lambda rec: attrs.evolve(rec, local_path=local),
            "set the local path of",
        )

    async def _transition(
        self, key: str, target: JobState, change: Callable[[JobRecord], JobRecord]
    ) -> JobRecord:
        allowed = _ALLOWED_FROM[target]

        def checked(rec: JobRecord) -> JobRecord:
            if rec.state not in allowed:
                raise JournalStateError(
                    f"illegal journal transition for job {key!r}: {rec.state} -> {target} "
                    f"(allowed from: {', '.join(sorted(s.value for s in allowed))})",
                    key=key,
                    state=rec.state.value,
                    target=target.value,
                )
            return attrs.evolve(change(rec), state=target)

        return await self._apply(key, checked)

    async def _update(
        self,
        key: str,
        allowed: frozenset[JobState],
        change: Callable[[JobRecord], JobRecord],
        what: str,
    ) -> JobRecord:
        def checked(rec: JobRecord) -> JobRecord:
            if rec.state not in allowed:
                raise JournalStateError(
                    f"cannot {what} job {key!r} in state {rec.state} "
                    f"(allowed in: {', '.join(sorted(s.value for s in allowed))})",
                    key=key,
                    state=rec.state.value,
                )
            return change(rec)

        return await self._apply(key, checked)

    async def _apply(self, key: str, change: Callable[[JobRecord], JobRecord]) -> JobRecord:
        now = self._clock.wall()

        def run(conn: sqlite3.Connection) -> JobRecord:
            with _write_transaction(conn):
                row = conn.execute(_SELECT_ONE, (key,)).fetchone()
                if row is None:
                    raise JournalStateError(f"no job with key {key!r} in the journal", key=key)
                new = attrs.evolve(change(_row_to_record(row)), updated_at=now)
                conn.execute(
                    _UPDATE,
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
