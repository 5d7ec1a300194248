"""The SQLite job journal: file checks, SQLite errors, options, error JSON, SIGKILL.

The rules both stores keep (states, conflicts, records, concurrency, cancellation) are
tested on both in ``test_store_rules.py``.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from job_stores import begin

from akool_async import _errors as errors
from akool_async._store import (
    SCHEMA_VERSION,
    JobState,
    Journal,
    JournalConflictError,
    JournalError,
    JournalFormatError,
    error_from_json,
    error_to_json,
)

pytestmark = pytest.mark.anyio

HELPER = Path(__file__).parent / "journal_helpers" / "journal_writer.py"


def sqlite_connect(path: Path) -> contextlib.closing[sqlite3.Connection]:
    """A plain sqlite3 connection that is closed on exit (no ResourceWarning)."""
    return contextlib.closing(sqlite3.connect(path))


async def test_file_is_in_wal_mode_with_schema_version(tmp_path: Path) -> None:
    """A new journal is a WAL-mode SQLite file whose meta table holds the schema version."""
    path = tmp_path / "j.db"
    async with Journal(path, synchronous="FULL"):
        pass
    with sqlite_connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        row = conn.execute("SELECT value FROM journal_meta WHERE name='schema_version'")
        assert row.fetchone()[0] == str(SCHEMA_VERSION)


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A journal written by a newer schema version is refused with a clear message."""
    path = tmp_path / "j.db"
    async with Journal(path):
        pass
    with sqlite_connect(path) as conn, conn:
        conn.execute("UPDATE journal_meta SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(JournalFormatError, match="newer akool-async"):
        await Journal.open(path)


async def test_foreign_sqlite_database_is_refused_and_untouched(tmp_path: Path) -> None:
    """An SQLite file that is not a journal is refused and not switched to WAL."""
    path = tmp_path / "other.db"
    with sqlite_connect(path) as conn, conn:
        conn.execute("CREATE TABLE users (id INTEGER)")
    with pytest.raises(JournalFormatError, match="not an akool-async journal"):
        await Journal.open(path)
    with sqlite_connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


async def test_garbage_file_is_refused(tmp_path: Path) -> None:
    """A file that is not SQLite at all is refused with JournalFormatError."""
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is not a database\n" * 200)
    with pytest.raises(JournalFormatError, match="not a readable SQLite database"):
        async with Journal(path):
            pass


async def test_empty_file_becomes_a_journal(tmp_path: Path) -> None:
    """A zero-byte file (e.g. from mktemp) is initialised as a new journal."""
    path = tmp_path / "empty.db"
    path.touch()
    async with Journal(path) as journal:
        await begin(journal, "a")
        assert len(await journal.records()) == 1


async def test_sqlite_errors_become_journal_errors(tmp_path: Path) -> None:
    """A write blocked by another process's lock past busy_timeout raises JournalError."""
    path = tmp_path / "j.db"
    async with Journal(path, busy_timeout=0) as journal:
        await begin(journal, "a")
        with sqlite_connect(path) as other:
            other.isolation_level = None
            other.execute("BEGIN IMMEDIATE")  # hold the write lock
            with pytest.raises(JournalError, match="locked") as info:
                await journal.mark_sending("a")
            other.execute("ROLLBACK")
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        rec = await journal.mark_sending("a")
        assert rec.state is JobState.SENDING


def test_invalid_options_raise_configuration_error(tmp_path: Path) -> None:
    """Bad synchronous or busy_timeout values raise ConfigurationError at construction."""
    with pytest.raises(errors.ConfigurationError):
        Journal(tmp_path / "j.db", synchronous="OFF")  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigurationError):
        Journal(tmp_path / "j.db", busy_timeout=-1)


ERRORS: list[errors.AkoolError] = [
    errors.AkoolError("plain"),
    errors.InsufficientCreditError(
        "credit", method="POST", path="/api/x", http_status=200, code=1104, msg="no credit"
    ),
    errors.RateLimitError("slow down", retry_after=2.5, http_status=429),
    errors.ValidationError("f", "r", errors=[("CharacterSwap.video", "required"), ("b", "c")]),
    errors.FaceMappingError([3], [1, 2], "https://x.test/v.mp4"),
    errors.WaitTimeoutError("late", deadline=12.5, task_id="task-1"),
    errors.ConnectionLostError("reset after send", method="POST", path="/create"),
    JournalConflictError(
        "k", kind="head_swap", fingerprint="a" * 64, stored_kind="x", stored_fingerprint="b" * 64
    ),
]


@pytest.mark.parametrize("err", ERRORS, ids=lambda e: type(e).__name__)
def test_error_json_round_trip(err: errors.AkoolError) -> None:
    """error_from_json(error_to_json(e)) rebuilds the same class, message and attributes."""
    back = error_from_json(error_to_json(err))
    assert type(back) is type(err)
    assert str(back) == str(err)
    assert vars(back) == vars(err)
    assert vars(pickle.loads(pickle.dumps(back))) == vars(err)


def test_error_json_keeps_cause_and_drops_objects() -> None:
    """A SubmissionUncertainError keeps its cause chain but not its request object."""
    cause = errors.RequestTimeoutError("timed out", method="POST", path="/create")
    err = errors.SubmissionUncertainError("uncertain", request=object())
    err.__cause__ = cause
    back = error_from_json(error_to_json(err))
    assert isinstance(back, errors.SubmissionUncertainError)
    assert not hasattr(back, "request")
    assert isinstance(back.__cause__, errors.RequestTimeoutError)
    assert isinstance(back.__cause__, TimeoutError)
    assert back.__cause__.path == "/create"


def test_unknown_error_class_falls_back_to_akool_error() -> None:
    """A non-SDK exception comes back as AkoolError whose message names the original class."""
    back = error_from_json(error_to_json(KeyError("missing")))
    assert type(back) is errors.AkoolError
    assert str(back) == "KeyError: 'missing'"
    assert back.code is None


@given(
    code=st.sampled_from([*sorted(errors.CODE_TO_ERROR), 4242]),
    msg=st.text(),
    http_status=st.none() | st.integers(100, 599),
    task_id=st.none() | st.text(min_size=1),
)
def test_api_error_json_round_trip_property(
    code: int, msg: str, http_status: int | None, task_id: str | None
) -> None:
    """Any API error built from the code table round-trips through JSON unchanged."""
    err = errors.error_for_code(code)(
        msg, code=code, msg=msg, http_status=http_status, task_id=task_id
    )
    back = error_from_json(error_to_json(err))
    assert type(back) is type(err)
    assert vars(back) == vars(err)


# Each state a reported state may have moved to with one more (unreported) write.
NEXT = {
    "pending": {"sending"},
    "sending": {"created", "uncertain"},
    "created": {"completed", "failed"},
    "completed": set(),
    "failed": set(),
    "uncertain": set(),
}


def test_sigkill_at_random_points_loses_nothing(tmp_path: Path) -> None:
    """A writer SIGKILLed at random points never loses a committed write or corrupts the file."""
    path = tmp_path / "j.db"
    rng = random.Random(20260522)
    reported: dict[str, str] = {}
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    for round_ in range(5):
        kill_after = rng.randint(1, 150)
        args = [sys.executable, str(HELPER), str(path), str(round_ * 1000), "100"]
        with subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env) as proc:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n"
            seen = 0
            while seen < kill_after:
                line = proc.stdout.readline()
                if not line or line == "done\n":
                    break
                key, state = line.split()
                reported[key] = state
                seen += 1
            proc.send_signal(signal.SIGKILL)
            # Lines already in the pipe were printed after their write returned: committed.
            for line in proc.stdout.read().splitlines(keepends=True):
                if line.endswith("\n") and line != "done\n":
                    key, state = line.split()
                    reported[key] = state
        assert proc.returncode in (-signal.SIGKILL, 0)

        with sqlite_connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            rows = dict(conn.execute("SELECT key, state FROM jobs").fetchall())
        for key, state in reported.items():
            assert key in rows, f"{key} reported {state} but missing"
            assert rows[key] == state or rows[key] in NEXT[state], (key, state, rows[key])
        unreported = set(rows) - set(reported)
        assert len(unreported) <= 1  # at most the begin in flight when the kill landed
        assert all(rows[k] == "pending" for k in unreported)

    async def final_check() -> None:
        async with Journal(path) as journal:
            for rec in await journal.records(["created", "completed", "failed"]):
                assert rec.task_id == f"task-{rec.key.rsplit('-', 1)[1]}"

    anyio.run(final_check)
