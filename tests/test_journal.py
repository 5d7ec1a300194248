"""The SQLite job journal: states, conflicts, file checks, error JSON, concurrency, SIGKILL."""

from __future__ import annotations

import contextlib
import os
import pickle
import random
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from conftest import ManualClock
from hypothesis import given
from hypothesis import strategies as st

import akool_async as akool
from akool_async import _errors as errors
from akool_async._converters import request_fingerprint, request_to_dict
from akool_async._store import (
    SCHEMA_VERSION,
    JobRecord,
    JobState,
    Journal,
    JournalConflictError,
    JournalError,
    JournalFormatError,
    JournalStateError,
    error_from_json,
    error_to_json,
)

pytestmark = pytest.mark.anyio

HELPER = Path(__file__).parent / "journal_helpers" / "journal_writer.py"
SWAP = akool.CharacterSwap("https://x.test/a.png", "https://x.test/v.mp4")
REQUEST = request_to_dict(SWAP)
FP = request_fingerprint(SWAP)


def sqlite_connect(path: Path) -> contextlib.closing[sqlite3.Connection]:
    """A plain sqlite3 connection that is closed on exit (no ResourceWarning)."""
    return contextlib.closing(sqlite3.connect(path))


async def begin(journal: Journal, key: str) -> JobRecord:
    """Record ``key`` with the standard request."""
    return await journal.begin(key, kind="character_swap", fingerprint=FP, request=REQUEST)


# How to bring a fresh key into each state, step by step.
PATHS: dict[JobState, list[str]] = {
    JobState.PENDING: [],
    JobState.SENDING: ["sending"],
    JobState.CREATED: ["sending", "created"],
    JobState.COMPLETED: ["sending", "created", "completed"],
    JobState.FAILED: ["sending", "created", "failed"],
    JobState.UNCERTAIN: ["sending", "uncertain"],
    JobState.REJECTED: ["rejected"],
}

# Every legal (from-state, operation) pair, written out independently of the module.
LEGAL = {
    (JobState.PENDING, "sending"),
    (JobState.PENDING, "resubmit"),
    (JobState.PENDING, "rejected"),
    (JobState.SENDING, "created"),
    (JobState.SENDING, "uncertain"),
    (JobState.SENDING, "rejected"),
    (JobState.CREATED, "completed"),
    (JobState.CREATED, "failed"),
    (JobState.UNCERTAIN, "resubmit"),
    (JobState.REJECTED, "sending"),
    (JobState.REJECTED, "resubmit"),
}


def operations(journal: Journal, key: str) -> dict[str, Callable[[], Awaitable[JobRecord]]]:
    """Each state-changing call on ``key``, by name."""
    lost = errors.ConnectionLostError("lost")
    return {
        "sending": lambda: journal.mark_sending(key),
        "resubmit": lambda: journal.mark_sending(key, resubmit_uncertain=True),
        "created": lambda: journal.mark_created(key, "task-1"),
        "uncertain": lambda: journal.mark_uncertain(key, lost),
        "rejected": lambda: journal.mark_rejected(key, errors.InsufficientCreditError("no")),
        "completed": lambda: journal.mark_completed(key, {"_id": "task-1", "status": 3}),
        "failed": lambda: journal.mark_failed(key, {"status": 4}, errors.TaskFailedError("x")),
    }


async def drive(journal: Journal, key: str, state: JobState) -> JobRecord:
    """Create ``key`` and move it into ``state``."""
    rec = await begin(journal, key)
    for step in PATHS[state]:
        rec = await operations(journal, key)[step]()
    assert rec.state is state
    return rec


async def test_character_swap_lifecycle_records_every_field(tmp_path: Path) -> None:
    """A job goes pending -> sending -> created -> completed with ids, raw result and times."""
    clock = ManualClock(start_wall=1_000.0, wall_step=1.0)
    async with Journal(tmp_path / "j.db", clock=clock) as journal:
        rec = await begin(journal, "a")
        assert (rec.state, rec.kind, rec.fingerprint, rec.attempts) == (
            JobState.PENDING,
            "character_swap",
            FP,
            0,
        )
        assert rec.request == REQUEST
        assert rec.created_at == rec.updated_at == 1001.0
        rec = await journal.mark_sending("a")
        assert (rec.state, rec.attempts, rec.updated_at) == (JobState.SENDING, 1, 1002.0)
        rec = await journal.mark_created("a", "task-9")
        assert (rec.state, rec.task_id) == (JobState.CREATED, "task-9")
        rec = await journal.mark_completed("a", {"_id": "task-9", "status": 3, "url": "u"})
        assert rec.state is JobState.COMPLETED
        assert rec.state.is_terminal
        assert rec.result_raw == {"_id": "task-9", "status": 3, "url": "u"}
        assert rec.error is None
        assert await journal.expected_download("a") is None  # no downloads table yet
        facts = {"path": str(tmp_path / "a.mp4"), "size": 9, "etag": '"v1"', "sha256": "ab" * 32}
        await journal.expect_download("a", facts)
        await journal.expect_download("a", {**facts, "size": 10})  # a later one replaces it
        assert await journal.expected_download("a") == {**facts, "size": 10}
        rec = await journal.set_local_path("a", tmp_path / "a.mp4")
        assert rec.local_path == str(tmp_path / "a.mp4")
        assert await journal.get("a") == rec
        assert rec.created_at == 1001.0


async def test_head_swap_analysis_id_and_failure(tmp_path: Path) -> None:
    """A head swap keeps its analysis id and a failed task stores its raw data and error."""
    async with Journal(tmp_path / "j.db") as journal:
        await journal.begin("h", kind="head_swap", fingerprint="f" * 64, request={"faces": []})
        await journal.set_analysis_id("h", "an-1")
        await journal.mark_sending("h")
        rec = await journal.mark_created("h", "task-2")
        assert rec.analysis_id == "an-1"
        err = errors.TaskFailedError("task failed", task_id="task-2", result=object())
        rec = await journal.mark_failed("h", {"_id": "task-2", "status": 4}, err)
        assert rec.state is JobState.FAILED
        assert rec.result_raw == {"_id": "task-2", "status": 4}
        stored = rec.error
        assert isinstance(stored, errors.TaskFailedError)
        assert stored.task_id == "task-2"
        assert not hasattr(stored, "result")  # not plain data, so not stored


async def test_mark_created_can_supply_analysis_id(tmp_path: Path) -> None:
    """mark_created records the analysis id when given."""
    async with Journal(tmp_path / "j.db") as journal:
        await journal.begin("h", kind="head_swap", fingerprint="f" * 64, request={})
        await journal.mark_sending("h")
        rec = await journal.mark_created("h", "task-3", analysis_id="an-3")
        assert (rec.task_id, rec.analysis_id) == ("task-3", "an-3")


@pytest.mark.parametrize("state", list(JobState))
async def test_transitions_from_each_state_follow_the_table(
    tmp_path: Path, state: JobState
) -> None:
    """From every state, exactly the documented transitions succeed and others raise."""
    async with Journal(tmp_path / "j.db") as journal:
        for name in operations(journal, "x"):
            key = f"{state.value}-{name}"
            before = await drive(journal, key, state)
            call = operations(journal, key)[name]
            if (state, name) in LEGAL:
                after = await call()
                assert after.state is not state or name == "resubmit"
            else:
                with pytest.raises(JournalStateError) as info:
                    await call()
                assert info.value.key == key
                assert info.value.state == state.value
                stored = await journal.get(key)
                assert stored == before  # nothing changed


async def test_uncertain_needs_explicit_resubmit(tmp_path: Path) -> None:
    """An uncertain job is only sent again with resubmit_uncertain=True, counting attempts."""
    async with Journal(tmp_path / "j.db") as journal:
        await drive(journal, "u", JobState.UNCERTAIN)
        with pytest.raises(JournalStateError, match="resubmit_uncertain=True"):
            await journal.mark_sending("u")
        rec = await journal.mark_sending("u", resubmit_uncertain=True)
        assert (rec.state, rec.attempts, rec.error_json) == (JobState.SENDING, 2, None)


async def test_rejected_keeps_error_and_may_be_sent_again(tmp_path: Path) -> None:
    """A rejected job stores its error; sending it again is allowed since nothing was created."""
    async with Journal(tmp_path / "j.db") as journal:
        await drive(journal, "r", JobState.SENDING)
        err = errors.InsufficientCreditError("low credit", code=1104, http_status=200)
        rec = await journal.mark_rejected("r", err)
        stored = rec.error
        assert isinstance(stored, errors.InsufficientCreditError)
        assert stored.code == 1104
        rec = await journal.mark_sending("r")
        assert (rec.state, rec.attempts, rec.error) == (JobState.SENDING, 2, None)


async def test_deadline_error_keeps_job_created(tmp_path: Path) -> None:
    """record_error stores a WaitTimeoutError but the job stays created, resumable by id."""
    async with Journal(tmp_path / "j.db") as journal:
        await drive(journal, "t", JobState.CREATED)
        rec = await journal.record_error("t", errors.WaitTimeoutError("late", task_id="task-1"))
        assert rec.state is JobState.CREATED
        assert isinstance(rec.error, errors.WaitTimeoutError)
        rec = await journal.mark_completed("t", {"status": 3})
        assert (rec.state, rec.error) == (JobState.COMPLETED, None)
        with pytest.raises(JournalStateError):
            await journal.record_error("t", errors.WaitTimeoutError("late"))


async def test_setters_are_limited_to_their_states(tmp_path: Path) -> None:
    """set_local_path needs a completed job and set_analysis_id a job not yet sent."""
    async with Journal(tmp_path / "j.db") as journal:
        await drive(journal, "c", JobState.CREATED)
        with pytest.raises(JournalStateError, match="local path"):
            await journal.set_local_path("c", "out.mp4")
        with pytest.raises(JournalStateError, match="analysis id"):
            await journal.set_analysis_id("c", "an")


async def test_unknown_key_raises(tmp_path: Path) -> None:
    """Changing a key that was never begun is a bug and raises JournalStateError."""
    async with Journal(tmp_path / "j.db") as journal:
        assert await journal.get("nope") is None
        with pytest.raises(JournalStateError, match="no job with key 'nope'"):
            await journal.mark_sending("nope")


async def test_begin_is_idempotent_for_the_same_request(tmp_path: Path) -> None:
    """Beginning a known key with the same fingerprint returns the stored record unchanged."""
    async with Journal(tmp_path / "j.db") as journal:
        await drive(journal, "k", JobState.CREATED)
        rec = await begin(journal, "k")
        assert (rec.state, rec.task_id) == (JobState.CREATED, "task-1")


@pytest.mark.parametrize(
    ("kind", "fingerprint"),
    [("character_swap", "0" * 64), ("head_swap", FP)],
)
async def test_begin_conflict_names_the_key(tmp_path: Path, kind: Any, fingerprint: str) -> None:
    """A key reused with another request or kind raises JournalConflictError naming the key."""
    async with Journal(tmp_path / "j.db") as journal:
        await begin(journal, "order-17")
        with pytest.raises(JournalConflictError, match="'order-17'") as info:
            await journal.begin("order-17", kind=kind, fingerprint=fingerprint, request={})
        assert isinstance(info.value, ValueError)
        assert isinstance(info.value, errors.AkoolError)
        assert info.value.key == "order-17"
        assert (await journal.counts())[JobState.PENDING] == 1


async def test_begin_validates_arguments(tmp_path: Path) -> None:
    """begin refuses an empty key, an unknown kind and a request that is not JSON."""
    async with Journal(tmp_path / "j.db") as journal:
        with pytest.raises(ValueError, match="empty"):
            await journal.begin("", kind="character_swap", fingerprint=FP, request={})
        with pytest.raises(ValueError, match="kind"):
            await journal.begin("a", kind="lip_sync", fingerprint=FP, request={})  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await journal.begin("a", kind="character_swap", fingerprint=FP, request={"x": {1j}})


async def test_reopen_shows_the_same_data(tmp_path: Path) -> None:
    """Records written before aclose are all there, unchanged and in order, after reopening."""
    path = tmp_path / "j.db"
    async with Journal(path) as journal:
        for key, state in zip("abcdefg", JobState, strict=True):
            await drive(journal, key, state)
        before = await journal.records()
    journal = await Journal.open(path)
    try:
        after = await journal.records()
    finally:
        await journal.aclose()
    assert after == before
    assert [r.key for r in after] == list("abcdefg")


async def test_records_filter_pages_and_counts(tmp_path: Path) -> None:
    """Records keep insertion order across pages and filter by state; counts covers all states."""
    async with Journal(tmp_path / "j.db") as journal:
        for i in range(10):
            await drive(journal, f"k{i}", JobState.CREATED if i % 3 else JobState.PENDING)
        paged = [r.key async for r in journal.iter_records(page_size=3)]
        assert paged == [f"k{i}" for i in range(10)]
        pending = await journal.records(["pending"])
        assert [r.key for r in pending] == ["k0", "k3", "k6", "k9"]
        counts = await journal.counts()
        assert counts == {**dict.fromkeys(JobState, 0), "pending": 4, "created": 6}


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


async def test_lifecycle_misuse_is_reported(tmp_path: Path) -> None:
    """Use before open or after close raises, a second open is refused, aclose is idempotent."""
    journal = Journal(tmp_path / "j.db")
    with pytest.raises(JournalStateError, match="not open"):
        await journal.get("a")
    async with journal:
        with pytest.raises(JournalStateError, match="already opened"):
            await journal.__aenter__()
    await journal.aclose()
    assert journal.closed
    with pytest.raises(JournalStateError, match="closed"):
        await begin(journal, "a")


def test_invalid_options_raise_configuration_error(tmp_path: Path) -> None:
    """Bad synchronous or busy_timeout values raise ConfigurationError at construction."""
    with pytest.raises(errors.ConfigurationError):
        Journal(tmp_path / "j.db", synchronous="OFF")  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigurationError):
        Journal(tmp_path / "j.db", busy_timeout=-1)


async def test_concurrent_tasks_all_land(tmp_path: Path) -> None:
    """Two hundred tasks writing at once leave every record complete and the counts right."""
    async with Journal(tmp_path / "j.db") as journal:

        async def job(i: int) -> None:
            key = f"k{i}"
            await begin(journal, key)
            await journal.mark_sending(key)
            await journal.mark_created(key, f"task-{i}")
            await journal.mark_completed(key, {"_id": f"task-{i}"})

        async with anyio.create_task_group() as tg:
            for i in range(200):
                tg.start_soon(job, i)
        records = await journal.records()
        assert {r.key for r in records} == {f"k{i}" for i in range(200)}
        assert all(r.task_id == f"task-{r.key[1:]}" for r in records)
        assert [r.seq for r in records] == sorted(r.seq for r in records)
        assert (await journal.counts())[JobState.COMPLETED] == 200


async def test_write_called_under_cancellation_still_commits(tmp_path: Path) -> None:
    """A write issued in an already-cancelled scope still commits; a read there does not run."""
    async with Journal(tmp_path / "j.db") as journal:
        await drive(journal, "a", JobState.SENDING)
        results: list[object] = []
        with anyio.CancelScope() as scope:
            scope.cancel()
            results.append(await journal.mark_created("a", "task-7"))
            results.append(await journal.get("a"))  # cancelled here, before it runs
        assert scope.cancelled_caught
        assert len(results) == 1
        rec = await journal.get("a")
        assert rec is not None
        assert (rec.state, rec.task_id) == (JobState.CREATED, "task-7")


async def test_cancelling_many_writers_leaves_consistent_records(tmp_path: Path) -> None:
    """Cancelling a task group mid-write leaves every record in a state its calls could reach."""
    async with Journal(tmp_path / "j.db") as journal:
        for i in range(50):
            await drive(journal, f"k{i}", JobState.SENDING)
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                for i in range(50):
                    tg.start_soon(journal.mark_created, f"k{i}", f"task-{i}")
                await anyio.lowlevel.checkpoint()  # let some writes start
                scope.cancel()
        for rec in await journal.records():
            assert rec.state in (JobState.SENDING, JobState.CREATED)
            assert (rec.task_id is None) == (rec.state is JobState.SENDING)


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
