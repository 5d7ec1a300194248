"""The SQLite side of the journal: schema, file checks, row mapping, account binding.

Blocking ``sqlite3`` helpers that :class:`~akool_async._store._sqlite.Journal` runs in its
worker thread. Nothing here touches the event loop.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Mapping
from typing import Any, Final, Literal, cast

from akool_async._errors import JournalBindingError, JournalError, JournalFormatError

from ._records import JobRecord, JobState

__all__ = [
    "APPLICATION_ID",
    "INSERT",
    "SCHEMA_VERSION",
    "SELECT_ONE",
    "SELECT_PAGE",
    "UPDATE",
    "bind_identity",
    "create_schema",
    "enable_wal",
    "inspect",
    "row_to_record",
    "write_transaction",
]

#: Schema version written by this code. A file with a higher version is refused.
SCHEMA_VERSION: Final = 1
# ``PRAGMA application_id`` marks the file as ours ("AKJ1"); `file(1)` shows it too.
APPLICATION_ID: Final = 0x414B4A31

_COLUMNS: Final = (
    "seq, key, kind, fingerprint, state, request, task_id, analysis_id, result_raw, error, "
    "local_path, attempts, created_at, updated_at"
)
SELECT_ONE: Final = f"SELECT {_COLUMNS} FROM jobs WHERE key = ?"  # noqa: S608 (constant)
SELECT_PAGE: Final = f"SELECT {_COLUMNS} FROM jobs WHERE seq > ? ORDER BY seq LIMIT ?"  # noqa: S608
UPDATE: Final = (
    "UPDATE jobs SET state = ?, task_id = ?, analysis_id = ?, result_raw = ?, error = ?, "
    "local_path = ?, attempts = ?, updated_at = ? WHERE seq = ?"
)
INSERT: Final = (
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
_SELECT_META: Final = "SELECT value FROM journal_meta WHERE name = ?"


def row_to_record(row: tuple[Any, ...]) -> JobRecord:
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


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
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


def inspect(conn: sqlite3.Connection, path: str) -> Literal["fresh", "journal"]:
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
    if app_id != APPLICATION_ID or "journal_meta" not in tables or "jobs" not in tables:
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


def enable_wal(conn: sqlite3.Connection, path: str) -> None:
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    # WAL is what makes a commit survive a killed process cheaply; refuse to run without it
    # (e.g. on a file system without shared memory support).
    if str(mode).lower() != "wal" and path != ":memory:":
        raise JournalError(f"{path}: could not enable WAL mode (got journal_mode={mode!r})")


def create_schema(conn: sqlite3.Connection, path: str) -> None:
    """Create the tables of a fresh file (unless another process just did)."""
    with write_transaction(conn):
        if inspect(conn, path) != "fresh":
            return
        for statement in _SCHEMA_V1:
            conn.execute(statement)
        conn.executemany(
            "INSERT INTO journal_meta (name, value) VALUES (?, ?)",
            [("schema_version", str(SCHEMA_VERSION)), ("creator", "akool-async")],
        )
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def bind_identity(
    conn: sqlite3.Connection, path: str, *, account: str | None, base_url: str | None
) -> None:
    """Check ``account``/``base_url`` against the journal's; record those not yet stored.

    A journal made before binding existed (or opened without values) accepts and keeps the
    first values it is given. A different stored value raises :class:`JournalBindingError`
    and changes nothing.
    """
    given = {"account": account, "base_url": base_url}
    if all(value is None for value in given.values()):
        return
    with write_transaction(conn):
        for field, value in given.items():
            if value is None:
                continue
            row = conn.execute(_SELECT_META, (field,)).fetchone()
            if row is None:
                conn.execute("INSERT INTO journal_meta (name, value) VALUES (?, ?)", (field, value))
            elif row[0] != value:
                raise JournalBindingError(path, field, stored=row[0], given=value)


#: Download facts (path, size, ETag, sha256) recorded right before a file is published, so
#: a run killed before :meth:`set_local_path` can recognise the file. Created on first use:
#: journals of schema 1 gain it without a version change (older readers ignore it).
_DOWNLOADS: Final = (
    "CREATE TABLE IF NOT EXISTS downloads (key TEXT PRIMARY KEY, facts TEXT NOT NULL) WITHOUT ROWID"
)


def put_download(conn: sqlite3.Connection, key: str, facts: Mapping[str, Any]) -> None:
    """Record (or replace) the download facts of ``key``."""
    with write_transaction(conn):
        conn.execute(_DOWNLOADS)
        conn.execute(
            "INSERT OR REPLACE INTO downloads (key, facts) VALUES (?, ?)", (key, json.dumps(facts))
        )


def get_download(conn: sqlite3.Connection, key: str) -> dict[str, Any] | None:
    """The download facts recorded for ``key``, or None."""
    tables = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'downloads'").fetchone()
    if tables is None:
        return None
    row = conn.execute("SELECT facts FROM downloads WHERE key = ?", (key,)).fetchone()
    return None if row is None else cast("dict[str, Any]", json.loads(row[0]))
